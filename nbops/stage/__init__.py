"""The one stage command every backend runs (DESIGN §1)."""
