"""Alignment: how well the world model's verdicts on policies agree with reality."""
