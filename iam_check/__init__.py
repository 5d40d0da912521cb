"""The least-privilege check (`make check-iam`): every AWS call the functions made in the test run, authorized
against the roles and key policies of the deployed template, and every grant no call used (README, "Security")."""
