"""initlab.plan (under construction)."""
