# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""The one time format of the collection: RFC 3339 UTC to the second (``2026-01-31T12:00:00Z``)."""

import datetime

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(dt):
    return dt.astimezone(datetime.timezone.utc).strftime(FORMAT)


def parse(value):
    """The aware datetime of ``value`` (ValueError when it is not in FORMAT)."""
    return datetime.datetime.strptime(str(value), FORMAT).replace(tzinfo=datetime.timezone.utc)
