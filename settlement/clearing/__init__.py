"""Daily clearing: a business day's window of records, verified, de-duplicated, netted and settled
into statements and payout files, on Celery workers or in-process."""
