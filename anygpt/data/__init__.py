"""Data: raw dataset readers, the demo corpus, shards, templates and the datamodule."""
