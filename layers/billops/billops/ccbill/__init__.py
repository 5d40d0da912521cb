"""Everything that talks to CCBill's subscription-management APIs.

`client.CCBillClient` is the one place CCBill is called. The other modules are pure and small: result codes and
outcomes (`result_codes`, `outcomes`), response parsing (`responses`), validation before a call
(`request_validation`, `discount_rules`, `subaccount_settings`), the upgrade catalogue (`upgrade_catalogue`),
credentials (`credentials`), the `enc` value of the Subscription Upgrade System (`upgrade_encryption`) and errors
(`errors`). Nothing heavy is imported here, so `import billops.ccbill` costs nothing.

How to use it, the outcome table and the settings: docs/ccbill-client.md.
"""
