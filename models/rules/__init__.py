"""The rules of the campaign: the interval rule, who may book, and facts about the district."""
