"""Offline evaluation: labelled query sets, BEIR folders, IR metrics via ranx."""
