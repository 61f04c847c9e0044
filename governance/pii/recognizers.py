"""Which recognizers Tollhouse runs, and how context words raise their scores.

Presidio's predefined recognizers for structured identifiers (cards, IBANs, e-mail,
IP addresses, US identifiers, URLs...), adjusted in `recognizers_builtin`, plus
Tollhouse's own for what the small NER models miss: postal addresses
(`recognizers_address`), phone numbers in national and international formats
(`recognizers_phone`), titles, ages, nationalities, names after a cue, company names
(`recognizers_people`), countries and postcodes (`recognizers_places`).

Entity types produced (the policy chooses which to mask): PERSON, LOCATION,
STREET_ADDRESS, ZIP_CODE, ORGANIZATION, NRP, DATE_TIME, AGE, TITLE, PHONE_NUMBER,
EMAIL_ADDRESS, URL, IP_ADDRESS, MAC_ADDRESS, CREDIT_CARD, IBAN_CODE, CRYPTO,
US_SSN, US_ITIN, US_PASSPORT, US_DRIVER_LICENSE, US_BANK_NUMBER, MEDICAL_LICENSE,
UK_NHS.
"""

from __future__ import annotations

from presidio_analyzer import EntityRecognizer
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    CryptoRecognizer,
    DateRecognizer,
    IpRecognizer,
    MacAddressRecognizer,
    MedicalLicenseRecognizer,
    NhsRecognizer,
    UsBankRecognizer,
    UsItinRecognizer,
    UsPassportRecognizer,
    UsSsnRecognizer,
)

from governance.pii.nlp import NER_SCORE, LoadedSpacyNlpEngine
from governance.pii.recognizers_address import AddressRecognizer
from governance.pii.recognizers_builtin import (
    CardNumberRecognizer,
    CaseInsensitiveIbanRecognizer,
    DomainRecognizer,
    DriverLicenseRecognizer,
    NerRecognizer,
    OfflineEmailRecognizer,
)
from governance.pii.recognizers_people import (
    AgeRecognizer,
    NameCueRecognizer,
    NameEchoRecognizer,
    NrpRecognizer,
    OrganizationRecognizer,
    TitleRecognizer,
)
from governance.pii.recognizers_phone import PhoneRecognizer
from governance.pii.recognizers_places import CountryRecognizer, PostalCodeRecognizer

# Presidio's context enhancer (used by its own recognizers and by policy recognizers):
# a context word among the 5 words before or the 2 after a match adds 0.35 to its score.
CONTEXT_BOOST = 0.35
MIN_SCORE_WITH_CONTEXT = 0.4
CONTEXT_WINDOW_BEFORE = 5
CONTEXT_WINDOW_AFTER = 2

# Analysed once per pipeline at start-up, so that lazy state exists before traffic does.
WARM_UP_TEXT = (
    "Dr. Jane Doe (jane.doe@example.com, +1 202-555-0143) lives at 1 Main Street, Apt. 2, "
    "Springfield, IL 62704. Card 4111 1111 1111 1111, IBAN GB82WEST12345698765432."
)


def default_recognizers(nlp_engine: LoadedSpacyNlpEngine) -> list[EntityRecognizer]:
    """One instance of every recognizer Tollhouse runs (NER only when the model has it)."""
    recognizers: list[EntityRecognizer] = [
        CreditCardRecognizer(),
        CardNumberRecognizer(),
        CryptoRecognizer(),
        DateRecognizer(),
        OfflineEmailRecognizer(),
        CaseInsensitiveIbanRecognizer(),
        IpRecognizer(),
        MacAddressRecognizer(),
        MedicalLicenseRecognizer(),
        NhsRecognizer(),
        DomainRecognizer(),
        UsBankRecognizer(),
        UsItinRecognizer(),
        DriverLicenseRecognizer(),
        UsPassportRecognizer(),
        UsSsnRecognizer(),
        PhoneRecognizer(),
        AddressRecognizer(),
        PostalCodeRecognizer(),
        CountryRecognizer(),
        TitleRecognizer(),
        AgeRecognizer(),
        NrpRecognizer(),
        NameCueRecognizer(),
        NameEchoRecognizer(),
        OrganizationRecognizer(),
    ]
    ner_entities = nlp_engine.ner_entities()
    if ner_entities:
        recognizers.append(NerRecognizer(supported_entities=ner_entities, ner_strength=NER_SCORE))
    return recognizers
