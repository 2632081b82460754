"""Custom search attributes: how ops find cases in the Temporal UI.

Only ids, amounts and statuses go here; search attributes are not encrypted, so no customer
contact details ever do.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

CASE_TYPE = SearchAttributeKey.for_keyword("CaseType")
CASE_STATUS = SearchAttributeKey.for_keyword("CaseStatus")
ORDER_ID = SearchAttributeKey.for_keyword("OrderId")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
# A float index, for range searches in the UI only; money is exact everywhere else.
AMOUNT = SearchAttributeKey.for_float("Amount")
RA_NUMBER = SearchAttributeKey.for_keyword("RaNumber")
# A complaint's product lot: finds every case of a lot under recall review.
LOT = SearchAttributeKey.for_keyword("Lot")
# A rush order's promise (the end of the promised day): finds the deliveries due, or late.
PROMISED_BY = SearchAttributeKey.for_datetime("PromisedBy")

ALL_KEYS = (CASE_TYPE, CASE_STATUS, ORDER_ID, CUSTOMER_ID, AMOUNT, RA_NUMBER, LOT, PROMISED_BY)
