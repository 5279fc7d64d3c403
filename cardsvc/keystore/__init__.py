"""Card master keys: versioned, wrapped under the key-encryption key, never shown."""
