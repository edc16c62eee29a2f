"""The demo data set: fictional sites, people and staff logins for trying every case."""
