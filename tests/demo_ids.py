"""Ids in the X-Series sandbox's built-in demo fixtures (gateway/sandbox/fixtures)."""

RETAILER = "b1c50056-f019-11e3-a0f5-b8ca3a64f8f4"
ALL_CUSTOMERS_GROUP = "0adfd74a-153e-11e9-fa42-67b5781ba1fb"
VIP_GROUP = "0adfd74a-153e-11e9-fa42-67b5781bb2a4"

TONY = "06e35f89-3c6d-11e9-f5ed-8a1a7a7e2b01"  # VIP, loyalty on, balance 50
JOHNNY = "06e35f89-3c6d-11e9-f5ed-8a1a7a7e2b02"  # All Customers, loyalty on, balance 12
PEPPER = "06e35f89-3c6d-11e9-f5ed-8a1a7a7e2b03"  # loyalty off
JOHN_SMITH = "06e35f89-3c6d-11e9-f5ed-8a1a7a7e2b04"  # balance 120

REGISTER = "0adfd74a-153e-11e9-fa42-67b5781c0001"
OUTLET = "0adfd74a-153e-11e9-fa42-67b5781c0100"
USER = "0adfd74a-153e-11e9-fa42-67b5781c0200"
GST = "0adfd74a-153e-11e9-fa42-67b5781c0300"

CASH = "dc85058a-a683-11e5-e112-51cc5a8f0001"
CREDIT_CARD = "dc85058a-a683-11e5-e112-51cc5a8f0003"
LOYALTY = "dc85058a-a683-11e5-e112-51cc5a8ffc96"

TSHIRT = "b8ca3a65-0183-11e4-fbb5-6ba391393b01"  # price 20, tax 3
MUG = "b8ca3a65-0183-11e4-fbb5-6ba391393b02"  # price 12, tax 1.8
GOLD_WATCH = "b8ca3a65-0183-11e4-fbb5-6ba391393b03"  # general 7, VIP 333

JOHNNY_SALE = "3b0e8c1a-0000-4000-8000-00000000a001"  # ONACCOUNT, T-shirt, 5 cash paid
TONY_SALE = "3b0e8c1a-0000-4000-8000-00000000a002"  # CLOSED, mug
