"""Keys, personal-data encryption, password hashing and staff tokens."""
