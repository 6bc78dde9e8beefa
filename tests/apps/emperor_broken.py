# Fails at import: a vassal that cannot start (exercises the emperor's back-off).
raise RuntimeError("emperor test: this app is broken on purpose")
