"""Optional integrations: each module needs its extra (pip install -e '.[NAME]')."""
