"""The book: reservations and their rules, the models that validate them, the database pool and
its errors, and the live feed of changes. Every SQL statement about a booking lives here."""
