"""DNS: one query to a resolver, judged by its rcode and answers.

One UDP round trip (TCP only when the answer is truncated), sent straight to the
resolver so its own rcode is seen: a stub resolver would turn SERVFAIL into "no
nameservers" after trying the others, and retry a silent one.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, ClassVar, Literal

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver
from pydantic import BeforeValidator, Field, field_validator

from probe.checks.errors import failure
from probe.contract.plugin import Check, CheckConfig, CheckContext, CheckFailed, Report
from probe.core.fields import StrictModel
from probe.core.model import Sample, Unit
from probe.core.networds import address, checked_port, network_words, split_host_port
from probe.core.units import format_duration

RECORDS = ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA")
RCODES = ("NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "NOTIMP", "FORMERR")
DNS_PORT = 53
SHOWN_ANSWERS = 5
# The query gets this share of the timeout, so a silent resolver is named as such
# before the runner's own deadline says only "timed out".
QUERY_TIMEOUT_SHARE = 0.9


def _as_list(raw: object) -> object:
    return [raw] if isinstance(raw, str) else raw


class DnsExpect(StrictModel):
    # Each must be among the answers: an address, a name, `10 mail.example.com` or just
    # the exchange of an MX, or a TXT string. Names are compared without case or final dot.
    answers_contain: Annotated[list[str], BeforeValidator(_as_list)] = Field(default_factory=list)
    rcode: Literal["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "NOTIMP", "FORMERR"] = "NOERROR"


class DnsConfig(CheckConfig):
    measures: ClassVar[frozenset[str]] = CheckConfig.measures | {"answers"}

    type: Literal["dns"]
    host: str  # the name to resolve
    record: Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA"] = "A"
    resolver: str | None = None  # `ip[:port]`; default: the first nameserver of resolv.conf
    expect: DnsExpect = Field(default_factory=DnsExpect)

    @field_validator("record", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("host")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            dns.name.from_text(value)
        except dns.exception.DNSException as exc:
            raise ValueError(f"not a DNS name {value!r}: {exc}") from None
        return value

    @field_validator("resolver")
    @classmethod
    def _resolver(cls, value: str | None) -> str | None:
        if value is not None:
            resolver_address(value)
        return value

    def target(self) -> str:
        return f"{self.record} {self.host} @ {self.resolver or 'system resolver'}"


def resolver_address(text: str) -> tuple[str, int]:
    """`1.1.1.1`, `127.0.0.1:5353`, `[::1]:5353` -> (ip, port); ValueError otherwise."""
    host, port = split_host_port(text.strip())
    if ":" in text and not text.startswith("[") and text.count(":") > 1:
        host, port = text, None  # a bare IPv6 address
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"expected an IP address with an optional port (1.1.1.1, 127.0.0.1:5353, "
            f"[::1]:5353), got {text!r}"
        ) from None
    return host, checked_port(port) if port else DNS_PORT


class DnsCheck(Check[DnsConfig]):
    config_model = DnsConfig

    def __init__(self, config: DnsConfig, context: CheckContext | None = None) -> None:
        super().__init__(config, context)
        self._server: tuple[str, int] | None = None

    def _where(self) -> tuple[str, int]:
        if self._server is None:
            if self.config.resolver:
                self._server = resolver_address(self.config.resolver)
            else:
                # Read once: resolv.conf changes with the container, not between runs.
                system = dns.resolver.Resolver()
                if not system.nameservers:
                    raise CheckFailed("no resolver configured in /etc/resolv.conf")
                self._server = (str(system.nameservers[0]), system.port)
        return self._server

    async def run(self) -> Report:
        config = self.config
        ip, port = self._where()
        where = address(ip, port)
        query = dns.message.make_query(config.host, config.record)
        budget = config.timeout * QUERY_TIMEOUT_SHARE
        try:
            response, _ = await dns.asyncquery.udp_with_fallback(
                query, ip, timeout=budget, port=port
            )
        except dns.exception.Timeout:
            raise CheckFailed(
                f"resolver {where} did not answer within {format_duration(budget)}"
            ) from None
        except OSError as exc:
            raise failure(exc, network_words(exc, ip, where)) from None
        except dns.exception.DNSException as exc:
            raise CheckFailed(f"resolver {where} sent a reply that is not DNS: {exc}") from None
        rcode = dns.rcode.to_text(response.rcode())
        answers = _answers(response, config.record)
        sample = Sample("answers", len(answers), Unit.COUNT, note=_shown(answers))
        return Report(samples=[sample], failure=self._judge(rcode, answers, where) or "")

    def _judge(self, rcode: str, answers: list[str], where: str) -> str | None:
        config, expect = self.config, self.config.expect
        if rcode != expect.rcode:
            return _rcode_words(rcode, expect.rcode, config.host, where)
        if rcode != "NOERROR":
            return None
        if not answers:
            return f"{config.host} has no {config.record} record (resolver {where})"
        missing = [want for want in expect.answers_contain if not _among(want, answers)]
        if missing:
            return (
                f"{config.record} {config.host}: {', '.join(missing)} not among {_shown(answers)}"
            )
        return None


def _rcode_words(rcode: str, expected: str, host: str, where: str) -> str:
    if expected != "NOERROR":
        return f"{host} answered {rcode} (expected {expected})"
    if rcode == "NXDOMAIN":
        return f"{host} does not exist (NXDOMAIN from {where})"
    if rcode == "SERVFAIL":
        return f"resolver {where} failed to resolve {host} (SERVFAIL)"
    if rcode == "REFUSED":
        return f"resolver {where} refused to resolve {host} (REFUSED)"
    return f"resolver {where} answered {rcode} for {host}"


def _answers(response: dns.message.Message, record: str) -> list[str]:
    wanted = dns.rdatatype.from_text(record)
    found: list[str] = []
    for rrset in response.answer:
        if rrset.rdtype == wanted:
            found += [_text(rdata) for rdata in rrset]
    return found


def _text(rdata: Any) -> str:
    if rdata.rdtype == dns.rdatatype.TXT:
        return "".join(part.decode("utf-8", errors="replace") for part in rdata.strings)
    if rdata.rdtype == dns.rdatatype.MX:
        return f"{rdata.preference} {rdata.exchange.to_text(omit_final_dot=True)}"
    if rdata.rdtype in (dns.rdatatype.CNAME, dns.rdatatype.NS):
        return str(rdata.target.to_text(omit_final_dot=True))
    return str(rdata.to_text())


def _among(want: str, answers: list[str]) -> bool:
    wanted = _normal(want)
    return any(wanted in (_normal(a), _normal(_exchange(a))) for a in answers)


def _exchange(answer: str) -> str:
    """An MX (`10 mail.example.com`) may be named by its exchange alone."""
    preference, _, name = answer.partition(" ")
    return name if preference.isdigit() and name else answer


def _normal(text: str) -> str:
    return text.strip().rstrip(".").lower()


def _shown(answers: list[str]) -> str:
    shown = ", ".join(answers[:SHOWN_ANSWERS])
    more = len(answers) - SHOWN_ANSWERS
    return f"{shown} and {more} more" if more > 0 else shown
