"""The typed YAML cascade spec: types, errors with file/line, plug-in blocks, simulation blocks, loader."""
