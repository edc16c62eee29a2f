"""Micro-benchmark of the Vault's ciphers: µs to encrypt and decrypt one personal value.

    .venv/bin/python bench/ciphers.py [--number 100000] [--repeat 5]

Prints one JSON line: AES-GCM (what Vault.encrypt writes) and Fernet (what it wrote before, still
read), best of --repeat runs of --number calls each, for an ID number (18 characters), a phone (11)
and an SMS body (~120 characters). Same Vault, same keys; the machine's load is printed too.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402

from models.people.pii import Vault  # noqa: E402

VALUES = {"id": "440106199001011234", "phone": "13812345678",
          "sms": "【天河区疫苗接种】张*明您好，请于7日内预约第二剂：https://example.cn/l/AbCdEfGhIjKlMnOpQrStUv 回复TD退订"}


def best_us(call, number: int, repeat: int) -> float:
    return round(min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e6, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--number", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    vault = Vault("bench-ciphers-" + "x1y2z3" * 6)
    fernet = Fernet(vault._fernet_key)  # the old format's writer, with the Vault's own Fernet key
    result: dict = {}
    for name, value in VALUES.items():
        new, old = vault.encrypt(value), fernet.encrypt(value.encode()).decode()
        assert vault.decrypt(new) == vault.decrypt(old) == value
        result[name] = {
            "aesgcm_encrypt_us": best_us(lambda: vault.encrypt(value), args.number, args.repeat),
            "aesgcm_decrypt_us": best_us(lambda: vault.decrypt(new), args.number, args.repeat),
            "fernet_encrypt_us": best_us(lambda: fernet.encrypt(value.encode()).decode(), args.number, args.repeat),
            "fernet_decrypt_us": best_us(lambda: vault.decrypt(old), args.number, args.repeat),
            "aesgcm_chars": len(new), "fernet_chars": len(old),
        }
    result["machine"] = {"cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2)}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
