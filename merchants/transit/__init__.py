"""Transit operators: signed fare tables by concession, rides and their records."""
