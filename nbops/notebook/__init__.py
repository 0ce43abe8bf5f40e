"""Everything nbops knows about notebooks: tags, the parameters contract, execution."""
