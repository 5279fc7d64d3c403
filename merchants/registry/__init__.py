"""The merchant registry: merchants, their terminals and credentials, a shop's static QR code."""
