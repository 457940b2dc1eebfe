"""initlab.datainit (under construction)."""
