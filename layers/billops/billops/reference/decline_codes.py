"""CCBill decline codes and their text (Appendix B of the Webhooks guide), for failed sales and renewals."""

DECLINE_TEXT: dict[int, str] = {
    1: 'Website is not available for signup',
    2: 'Unable to determine website signup requirements',
    3: 'Your card type is not accepted, please try another type of credit card',
    4: 'Banking System Error',
    5: 'The credit card you entered is not valid',
    # The published text of code 6 has a glossary sentence pasted into it; this is the sentence CCBill meant.
    6: 'Please check to ensure you entered your expiration date correctly',
    7: 'Please check to ensure you entered your bank account number correctly',
    8: "Please check to ensure you entered your bank's routing number correctly",
    9: 'Banking System Error, please try again',
    10: 'Website has invalid pricing',
    11: 'Transaction Declined',
    12: 'You currently have a subscription and are unable to signup',
    13: 'You have already had a free trial',
    14: 'You must enter your CVV2 number on the back of your card',
    15: 'Your account is currently being processed, please check the website you are joining to see if you have access. If not, please contact support@ccbill.com',
    16: 'Subscription ID Provided is invalid',
    17: 'Subscription ID does not exist in system',
    18: 'Previous Transaction Attempt in request was declined',
    19: 'You are not authorized to signup with the provided credentials',
    20: 'No Decline',
    21: 'You have already had a trial, please select a normal recurring membership option',
    22: 'Error contacting bank, please try again later',
    23: 'Invalid Credit Card Provided',
    24: 'Transaction Denied by Bank',
    25: 'Bank Error',
    26: 'Card Processing Setup Incorrect for Merchant',
    27: 'System Error, Please Try Again',
    28: 'We are unable to process your transaction at this time. Please try again at a later time',
    29: 'Card Expired',
    30: 'We are unable to bill the telephone number provided for this transaction. Please return to the website and choose an alternate payment method.',
    31: 'Insufficient Funds',
    32: 'You must provide CVV2 to complete transaction',
    33: 'Unable to determine transaction type',
    34: 'Error contacting bank, please try again later',
    35: 'Card Declined at Pre-Auth SC',
    36: 'Unable To Contact Bank',
    37: "We currently do not process for your bank's bin",
    38: 'Transaction Refused by Issuing Bank',
    39: 'You Have Submitted Too Many Times Today',
    40: 'The Card you are using is not accepted by this Merchant',
    41: 'Merchant Inactive',
    42: 'Incorrect Address Provided',
    43: 'We are unable to process your telephone billing transaction because your provider only allows for one charge, per telephone number, per day, and our records show that you have an existing daily charge to this telephone number. Please return to the website and choose an alternative payment method.',
    44: "We're sorry, at this time prepaid cards are not allowed. Please try a different card type.",
    45: 'Transaction requires additional approval: please refer to your confirmation e-mail for further instructions.',
}


def decline_text(failure_code: str | int | None) -> str | None:
    """CCBill's text for a decline code: accepts 31, "31" and the "BE-31" form seen in webhooks."""
    if failure_code is None:
        return None
    digits = "".join(ch for ch in str(failure_code).rsplit("-", 1)[-1] if ch.isdigit())
    return DECLINE_TEXT.get(int(digits)) if digits else None
