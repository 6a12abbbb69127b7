"""Running jobs against providers: the retry and fallback chain."""
