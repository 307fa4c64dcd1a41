"""Storage adapters: where deals and their histories live."""
