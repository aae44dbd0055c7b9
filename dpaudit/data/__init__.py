"""Instruction data: records, loaders for each schema, tokenization, the synthetic generator."""

from dpaudit.data.records import Message, Record

__all__ = ["Message", "Record"]
