"""Parsing CCBill's CSV and XML answers, and the bodies nobody documents."""

from __future__ import annotations

import pytest
from billops.ccbill.responses import BodyKind, parse_body


@pytest.mark.parametrize(
    "body,code",
    [
        ('"results"\n"1"\n', 1),
        ('"results"\r\n"-7"\r\n', -7),
        ('"results" "-10"', -10),  # the discount addendum's copy shows both lines on one
        ("<?xml version='1.0' standalone='yes'?>\n<results>1</results>", 1),
        ('<?xml version="1.0" standalone="true"?> <results>-10</results>', -10),  # not valid XML; CCBill's copy
        ("<results>-22</results>", -22),
        ("1", 1),
        ("\ufeff\"results\"\n\"0\"", 0),
        (b'"results"\n"-3"\n', -3),
    ],
)
def test_result_codes_in_every_documented_shape(body, code):
    parsed = parse_body(body)
    assert parsed.kind is BodyKind.CODE
    assert parsed.code == code


def test_a_csv_status_document():
    body = ('"cancelDate","signupDate","subscriptionStatus","nextBillingDate"\n'
            '"","20250101120000","2","20250131"\n')
    parsed = parse_body(body)
    assert parsed.kind is BodyKind.DOCUMENT
    assert parsed.body_format == "csv"
    assert parsed.fields == {"cancelDate": "", "signupDate": "20250101120000", "subscriptionStatus": "2",
                             "nextBillingDate": "20250131"}


def test_an_xml_approval_document():
    body = ("<?xml version='1.0' standalone='yes'?>\n<results><approved>1</approved>"
            "<subscriptionId>0126015401000000302</subscriptionId></results>")
    parsed = parse_body(body)
    assert parsed.kind is BodyKind.DOCUMENT
    assert parsed.fields == {"approved": "1", "subscriptionId": "0126015401000000302"}


def test_a_csv_document_whose_only_field_is_results_is_a_code():
    assert parse_body('"results"\n"-2"').code == -2


@pytest.mark.parametrize(
    "body,code",
    [("Error: 02 Failed login", "02"), ("error: 04 check IP failed\n", "04"), ("Error: something", None)],
)
def test_datalink_errors(body, code):
    parsed = parse_body(body)
    assert parsed.kind is BodyKind.DATALINK_ERROR
    assert parsed.datalink_code == code


@pytest.mark.parametrize(
    "body,why",
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("<html><body><h1>502 Bad Gateway</h1></body></html>", "HTML"),
        ("<!DOCTYPE html><html></html>", "HTML"),
        ("OK", "not a CCBill answer"),
        ("Approved", "not a CCBill answer"),
        ('"results"\n"yes"', "non-numeric"),
        ("<results>approved</results>", "non-numeric"),
        ("<results><approved>1</approved>", "malformed XML"),
        ("<error>1</error>", "not <results>"),
        ('<!DOCTYPE r [<!ENTITY a "1">]><results>&a;</results>', "DOCTYPE"),
        ('"a","b"\n"1"', "header has 2 fields"),
        ('"not a field name!"\n"1"', "not a CCBill answer"),
    ],
)
def test_unreadable_bodies_are_never_coerced_into_a_code(body, why):
    parsed = parse_body(body)
    assert parsed.kind is BodyKind.UNREADABLE
    assert parsed.code is None
    assert why in parsed.detail


def test_a_long_body_is_cut_in_messages():
    parsed = parse_body("x" * 5000)
    assert len(parsed.detail) < 300
