"""Domain exceptions of the storage layer: callers never see botocore's exceptions."""


class StorageUnavailable(RuntimeError):
    """DynamoDB did not confirm the write or read (throttled, erred, timed out). Safe to retry."""


class RevisionConflict(RuntimeError):
    """Someone else updated the record since it was read (optimistic locking). Re-read and retry."""
