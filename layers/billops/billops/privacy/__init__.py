"""What is personal data, what is never stored, and how it is kept out of logs."""
