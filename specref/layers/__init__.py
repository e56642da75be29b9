"""One layer per module; see each module's docstring for its formula and adjoint."""
