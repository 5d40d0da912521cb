"""The ``enc`` value of CCBill's Subscription Upgrade System, and the KMS-held TripleDES key behind it.

What CCBill's guide (ccbill-subscription-upgrade-system.txt) settles: ``enc`` is "TripleDES encrypted string, Base64
Encoded. Will be inclusive of either the subscriptionId or username" - its example is ``subscriptionId = 1234567890
OR username = johnDoe (before encryption)`` and a 44-character ``enc`` (32 bytes: ``subscriptionId=1234567890``, 25
characters, padded to a whole block) - and the three upgrade variables (``upgradeClientAccnum``,
``upgradeClientSubacc``, ``upgradeTypeId``) are separate form fields beside it. So the plaintext is the identity and
nothing else: ``subscriptionId=<id>`` or ``username=<name>`` (``bare``: the value alone, a literal reading of "encode
the username or Subscription ID").

What it does not settle (mode, padding, how the key text becomes a TripleDES key; its sample key ``8745921457`` is 10
digits, not 24 bytes, and its sample ``enc`` cannot be reproduced), each a setting (docs/ccbill-assumptions.md):

* key ``hexmod`` (default): the key text as Merchant Support hands it out (``8745921457``, or 48 hex digits), read
  the way Perl's ``pack("H*", ...)`` reads it - hex digits as themselves, other letters folded onto a nybble -
  right-padded with '0' to 48 digits, i.e. 24 bytes. This is what Perl's Crypt::TripleDES does with a passphrase
  (CCBill's scripts are Perl CGI) and what the one public working integration (MagicMembers' ``mgm_ccbill``) does; a
  48-hex-digit key gives the same bytes as ``hex``. ``hex`` accepts 48 hex digits only; ``raw`` takes the key
  text's bytes (16 or 24 characters);
* mode ``ecb`` (3DES-EDE3, no IV; Crypt::TripleDES and MagicMembers) or ``cbc`` (``BILLOPS_UPGRADE_ENC_IV``);
* padding ``space`` (1 to 8 spaces, as MagicMembers does), ``pkcs7``, ``zero`` or ``none``.

A short key weakens the cipher: ``8745921457`` fills 5 of the 24 key bytes, the second and third DES keys are zero,
and EDE3 with K2 = K3 is single DES under K1 (``key_strength_note`` says so; ``billops ccbill check`` prints it).

``enc`` is a bearer credential (docs/upgrade-page.md): the same for every link of a subscription, with no expiry, and
its 8-byte ECB blocks can be recombined across subscriptions. ``ENC_CREDENTIAL_WARNING`` is the sentence every
answer that hands one out carries.

The key never sits in clear in configuration: ``BILLOPS_UPGRADE_KEY_CIPHERTEXT`` (or the secret named by
``BILLOPS_UPGRADE_KEY_SECRET_ARN``) holds the KMS ciphertext of the key text exactly as given, decrypted once per
container with the encryption context below. The decrypted key lives in an object whose repr is masked.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from billops.ccbill.errors import CCBillConfigurationError, CCBillError

if TYPE_CHECKING:
    from billops.settings.ccbill import UpgradeKeySettings

BLOCK = 8
ENCRYPTION_CONTEXT = {"billops:purpose": "ccbill-upgrade-enc"}
"""KMS encryption context bound to the key's ciphertext: a ciphertext made for anything else will not decrypt here."""

ENC_CREDENTIAL_WARNING = (
    "enc is a permanent credential of this subscription: it is the same for every link, never expires (the link's "
    "expires_at limits our page, not the enc), and anyone who holds it can upgrade - charge - the subscription at "
    "CCBill's upgrade form. With TripleDES in ECB mode its 8-byte blocks can be recombined: a consumer holding the "
    "enc of two subscriptions can build one for a third. Prefer the backend allowUpgrade post (a 30-minute window, "
    "bound to the merchant's whitelisted IP: deploy with WorkerFixedEgressIp=true)."
)
"""Said wherever an enc is handed out (the upgrade link API, docs, ``billops ccbill check``)."""

_HEX48 = re.compile(r"^[0-9A-Fa-f]{48}$")
_HEXMOD_IN = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HEXMOD_OUT = "0123456789ABCDEF0123456789ABCDEF0123abcdef0123456789abcdef0123"
_HEXMOD = str.maketrans(_HEXMOD_IN, _HEXMOD_OUT)


class PlaintextFormat(StrEnum):
    QUERY = "query"
    BARE = "bare"


class KeyEncoding(StrEnum):
    HEX = "hex"
    HEXMOD = "hexmod"
    RAW = "raw"


class CipherMode(StrEnum):
    ECB = "ecb"
    CBC = "cbc"


class Padding(StrEnum):
    SPACE = "space"
    PKCS7 = "pkcs7"
    ZERO = "zero"
    NONE = "none"


class UpgradeKeyUnavailable(CCBillError):
    """The TripleDES key could not be decrypted (KMS refused, ciphertext missing or malformed)."""


@dataclass(frozen=True)
class EncRecipe:
    plaintext_format: PlaintextFormat = PlaintextFormat.QUERY
    key_encoding: KeyEncoding = KeyEncoding.HEXMOD
    mode: CipherMode = CipherMode.ECB
    padding: Padding = Padding.SPACE
    iv: bytes = b"\x00" * BLOCK

    @classmethod
    def from_settings(cls, settings: UpgradeKeySettings) -> EncRecipe:
        return cls(
            plaintext_format=PlaintextFormat(settings.enc_plaintext),
            key_encoding=KeyEncoding(settings.enc_key_encoding),
            mode=CipherMode(settings.enc_mode),
            padding=Padding(settings.enc_padding),
            iv=bytes.fromhex(settings.enc_iv) if settings.enc_iv else b"\x00" * BLOCK,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EncRecipe:
        from billops.settings.ccbill import UpgradeKeySettings

        return cls.from_settings(UpgradeKeySettings.from_env(env))


class UpgradeKey:
    """The 3DES key bytes; never shown by repr/str, never pickled into a log."""

    __slots__ = ("_material",)

    def __init__(self, material: bytes) -> None:
        if len(material) not in (16, 24):
            raise CCBillConfigurationError(f"a TripleDES key has 16 or 24 bytes, not {len(material)}")
        self._material = bytes(material)

    def material(self) -> bytes:
        return self._material

    def __repr__(self) -> str:
        return f"UpgradeKey(<{len(self._material)} bytes, hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("an UpgradeKey cannot be pickled")


def derive_key(key_text: str, encoding: KeyEncoding = KeyEncoding.HEXMOD) -> UpgradeKey:
    """The 3DES key from the key text CCBill gave, per ``encoding`` (see the module docstring).

    Refuses only what cannot be a key under that encoding; the message says why, never what the key is."""
    text = key_text.strip()
    if encoding is KeyEncoding.HEX:
        if not _HEX48.match(text):
            raise CCBillConfigurationError(f"the upgrade key has {len(text)} characters; key encoding 'hex' needs "
                                           "exactly 48 hex digits (BILLOPS_UPGRADE_ENC_KEY_ENCODING=hexmod takes "
                                           "a key as Merchant Support hands it out, e.g. 10 digits)")
        return UpgradeKey(bytes.fromhex(text))
    if encoding is KeyEncoding.HEXMOD:
        if not text:
            raise CCBillConfigurationError("the upgrade key is empty")
        if len(text) > 48:
            raise CCBillConfigurationError(f"the upgrade key has {len(text)} characters; a TripleDES key holds at "
                                           "most 48 hex digits (24 bytes)")
        if any(char not in _HEXMOD_IN for char in text):
            raise CCBillConfigurationError("the upgrade key may hold letters and digits only (key encoding "
                                           "'hexmod'); copy it exactly as Merchant Support gave it")
        return UpgradeKey(bytes.fromhex(text.translate(_HEXMOD).ljust(48, "0")))
    material = text.encode("utf-8")
    if len(material) not in (16, 24):
        raise CCBillConfigurationError(f"the upgrade key has {len(material)} bytes; key encoding 'raw' needs 16 or "
                                       "24 characters")
    return UpgradeKey(material)


def key_strength_note(key: UpgradeKey) -> str | None:
    """A warning when the key's three DES keys are not distinct (a short key padded with zeros): TripleDES then
    degenerates to single DES (K1 = K2 cancels out, K2 = K3 too). None when the three differ."""
    material = key.material()
    parts = [material[0:8], material[8:16], material[16:24] if len(material) == 24 else material[0:8]]
    if parts[0] == parts[1] or parts[1] == parts[2]:
        return ("the upgrade key's three DES keys are not distinct (a short key is padded with zeros), so "
                "TripleDES works as single DES (56-bit key): an enc can be brute-forced; prefer the backend "
                "allowUpgrade post")
    return None


def pad(data: bytes, padding: Padding) -> bytes:
    if padding is Padding.SPACE:
        return data + b" " * (BLOCK - len(data) % BLOCK)
    if padding is Padding.PKCS7:
        count = BLOCK - len(data) % BLOCK
        return data + bytes([count]) * count
    if padding is Padding.ZERO:
        return data + b"\x00" * (-len(data) % BLOCK)
    if len(data) % BLOCK:
        raise CCBillConfigurationError(f"padding 'none' needs a plaintext of a multiple of {BLOCK} bytes")
    return data


def unpad(data: bytes, padding: Padding) -> bytes:
    if padding is Padding.SPACE:
        return data.rstrip(b" ")
    if padding is Padding.ZERO:
        return data.rstrip(b"\x00")
    if padding is Padding.PKCS7:
        count = data[-1] if data else 0
        if not 1 <= count <= BLOCK or data[-count:] != bytes([count]) * count:
            raise ValueError("bad PKCS#7 padding")
        return data[:-count]
    return data


def _cipher(key: UpgradeKey, recipe: EncRecipe) -> Any:
    try:  # cryptography >= 43 keeps TripleDES among the "decrepit" algorithms
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    except ImportError:  # pragma: no cover - older cryptography
        from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    # CCBill's Subscription Upgrade System mandates TripleDES (ECB or CBC, per the account's recipe): not our choice.
    mode = modes.ECB() if recipe.mode is CipherMode.ECB else modes.CBC(recipe.iv)  # nosec B305  # CCBill's format
    return Cipher(TripleDES(key.material()), mode)  # nosec B304  # CCBill's Upgrade System mandates TripleDES


def encrypt(key: UpgradeKey, plaintext: str, recipe: EncRecipe = EncRecipe()) -> str:
    """Base64(3DES(pad(plaintext))) - the ``enc`` value."""
    encryptor = _cipher(key, recipe).encryptor()
    ciphertext = encryptor.update(pad(plaintext.encode("utf-8"), recipe.padding)) + encryptor.finalize()
    return base64.b64encode(ciphertext).decode("ascii")


def decrypt(key: UpgradeKey, enc: str, recipe: EncRecipe = EncRecipe()) -> str:
    """The inverse of encrypt (the sandbox uses it to read ``enc`` as CCBill would)."""
    try:
        ciphertext = base64.b64decode(enc, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("enc is not Base64") from exc
    if not ciphertext or len(ciphertext) % BLOCK:
        raise ValueError("enc is not a whole number of 3DES blocks")
    decryptor = _cipher(key, recipe).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    return unpad(padded, recipe.padding).decode("utf-8")


def upgrade_plaintext(
    recipe: EncRecipe,
    *,
    subscription_id: str | None = None,
    username: str | None = None,
) -> str:
    """What gets encrypted: the subscriber's identity only, ``subscriptionId=<id>`` or ``username=<name>`` ('query',
    the guide's "subscriptionId = 1234567890 OR username = johnDoe (before encryption)"), or the bare value ('bare').
    The upgrade variables never go inside: they are separate form fields."""
    if (subscription_id is None) == (username is None):
        raise ValueError("give exactly one of subscription_id or username")
    name, value = ("subscriptionId", subscription_id) if subscription_id is not None else ("username", username)
    if value is None:  # unreachable after the check above; says so to the type checker without an assert
        raise ValueError("give exactly one of subscription_id or username")
    if recipe.plaintext_format is PlaintextFormat.BARE:
        return value
    return f"{name}={quote(str(value), safe='')}"


def identity_from_plaintext(plaintext: str, recipe: EncRecipe) -> tuple[str, str] | None:
    """The inverse of upgrade_plaintext: ("subscriptionId" | "username", value), or None when the plaintext holds
    anything but one identity (the sandbox, playing CCBill, refuses such an enc)."""
    from urllib.parse import unquote

    if recipe.plaintext_format is PlaintextFormat.BARE:
        if not plaintext or "=" in plaintext or "&" in plaintext:
            return None
        return ("subscriptionId", plaintext) if plaintext.isdigit() else ("username", plaintext)
    name, separator, value = plaintext.partition("=")
    if not separator or name not in ("subscriptionId", "username") or not value or "&" in value or "=" in value:
        return None
    value = unquote(value)
    if name == "subscriptionId" and not value.isdigit():
        return None
    return name, value


# --- the KMS-held key -------------------------------------------------------------------------------------------


class KmsUpgradeKeyProvider:
    """Decrypts the key's KMS ciphertext once and keeps the key for the life of the container."""

    def __init__(
        self,
        ciphertext_b64: str | Callable[[], str],
        *,
        key_encoding: KeyEncoding = KeyEncoding.HEXMOD,
        kms_client_factory: Callable[[], Any] | None = None,
        kms_key_id: str | None = None,
    ) -> None:
        self._ciphertext = ciphertext_b64
        self._key_encoding = key_encoding
        self._kms_client_factory = kms_client_factory
        self._kms_key_id = kms_key_id
        self._key: UpgradeKey | None = None
        self._lock = threading.Lock()

    def get(self) -> UpgradeKey:
        if self._key is None:
            with self._lock:
                if self._key is None:
                    self._key = self._decrypt()
        return self._key

    def _decrypt(self) -> UpgradeKey:
        ciphertext_b64 = self._ciphertext() if callable(self._ciphertext) else self._ciphertext
        try:
            blob = base64.b64decode((ciphertext_b64 or "").strip(), validate=True)
        except (binascii.Error, ValueError):
            raise UpgradeKeyUnavailable("the upgrade key ciphertext is not Base64") from None
        if not blob:
            raise UpgradeKeyUnavailable("the upgrade key ciphertext is empty")
        client = self._kms_client_factory() if self._kms_client_factory else _default_kms_client()
        request: dict[str, Any] = {"CiphertextBlob": blob, "EncryptionContext": dict(ENCRYPTION_CONTEXT)}
        if self._kms_key_id:
            request["KeyId"] = self._kms_key_id
        try:
            plaintext = client.decrypt(**request)["Plaintext"]
        except Exception as exc:  # noqa: BLE001 - any botocore error; its text names the key, never the plaintext
            raise UpgradeKeyUnavailable(f"KMS could not decrypt the upgrade key ({type(exc).__name__})") from None
        try:
            return derive_key(plaintext.decode("utf-8"), self._key_encoding)
        except (UnicodeDecodeError, CCBillConfigurationError) as exc:
            message = exc.args[0] if isinstance(exc, CCBillConfigurationError) else "not text"
            raise UpgradeKeyUnavailable(f"the decrypted upgrade key is unusable: {message}") from None

    def __repr__(self) -> str:
        return "KmsUpgradeKeyProvider(<ciphertext>)"


def _default_kms_client() -> Any:
    import boto3

    return boto3.client("kms")


def encrypt_key_for_configuration(kms_client: Any, kms_key_id: str, key_text: str) -> str:
    """The Base64 KMS ciphertext to put in BILLOPS_UPGRADE_KEY_CIPHERTEXT (the local stack uses this at start-up)."""
    blob = kms_client.encrypt(KeyId=kms_key_id, Plaintext=key_text.strip().encode("utf-8"),
                              EncryptionContext=dict(ENCRYPTION_CONTEXT))["CiphertextBlob"]
    return base64.b64encode(blob).decode("ascii")


class UpgradeEncryptor:
    """Builds ``enc`` values with the KMS-held key and the configured recipe."""

    def __init__(self, key_provider: KmsUpgradeKeyProvider | Callable[[], UpgradeKey],
                 recipe: EncRecipe | None = None) -> None:
        self._key_provider = key_provider
        self.recipe = recipe or EncRecipe()

    def key(self) -> UpgradeKey:
        """The key (decrypted through KMS once per container); raises UpgradeKeyUnavailable."""
        provider = self._key_provider
        return provider.get() if isinstance(provider, KmsUpgradeKeyProvider) else provider()

    def enc(self, *, subscription_id: str | None = None, username: str | None = None) -> str:
        """The enc of one subscriber: the identity only (the upgrade variables are separate form fields)."""
        plaintext = upgrade_plaintext(self.recipe, subscription_id=subscription_id, username=username)
        return encrypt(self.key(), plaintext, self.recipe)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None,
                 kms_client_factory: Callable[[], Any] | None = None) -> UpgradeEncryptor | None:
        """The encryptor the settings describe, or None when no key is configured."""
        from billops.settings.ccbill import UpgradeKeySettings

        return cls.from_settings(UpgradeKeySettings.from_env(env), kms_client_factory)

    @classmethod
    def from_settings(cls, settings: UpgradeKeySettings,
                      kms_client_factory: Callable[[], Any] | None = None) -> UpgradeEncryptor | None:
        recipe = EncRecipe.from_settings(settings)
        ciphertext = settings.upgrade_key_ciphertext or ""
        secret_arn = settings.upgrade_key_secret_arn or ""
        if not ciphertext and not secret_arn:
            return None
        source: str | Callable[[], str]
        if ciphertext:
            source = ciphertext
        else:
            def source() -> str:
                from aws_lambda_powertools.utilities import parameters

                from billops.storage.aws_clients import secrets_provider

                try:
                    value = secrets_provider(shared=False).get(secret_arn)
                except parameters.exceptions.GetParameterError:
                    raise UpgradeKeyUnavailable(f"cannot read the upgrade key ciphertext from {secret_arn}") from None
                return value.decode("ascii") if isinstance(value, bytes) else str(value)
        provider = KmsUpgradeKeyProvider(source, key_encoding=recipe.key_encoding,
                                         kms_client_factory=kms_client_factory,
                                         kms_key_id=settings.upgrade_kms_key_id)
        return cls(provider, recipe)
