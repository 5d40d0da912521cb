"""CCBill's reference tables (currency codes, decline codes), copied from its documentation."""
