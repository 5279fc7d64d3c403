"""Card products, eligibility rules and the card lifecycle."""
