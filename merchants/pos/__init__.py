"""The signed POS API: what terminals send and what the backend decides."""
