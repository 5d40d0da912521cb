"""The `enc` of the Subscription Upgrade System: known answers from OpenSSL's des-ede3, every mode and padding."""

from __future__ import annotations

import base64
import shutil
import subprocess

import boto3
import pytest
from billops.ccbill.errors import CCBillConfigurationError
from billops.ccbill.upgrade_encryption import (
    ENCRYPTION_CONTEXT,
    CipherMode,
    EncRecipe,
    KeyEncoding,
    KmsUpgradeKeyProvider,
    Padding,
    PlaintextFormat,
    UpgradeEncryptor,
    UpgradeKeyUnavailable,
    decrypt,
    derive_key,
    encrypt,
    encrypt_key_for_configuration,
    identity_from_plaintext,
    key_strength_note,
    pad,
    upgrade_plaintext,
)
from moto import mock_aws

KEY = "0123456789abcdeffedcba987654321089abcdef01234567"
IV = bytes.fromhex("0011223344556677")
SUBSCRIPTION = "subscriptionId=0126015401000000123"
WITH_UPGRADE = SUBSCRIPTION + "&upgradeClientAccnum=900100&upgradeClientSubacc=0001&upgradeTypeId=0015"
USERNAME = "username=janedoe"

# Produced with OpenSSL 3.0 (`openssl enc -des-ede3[-cbc] -K KEY [-iv IV] [-nopad] | base64`); for the space
# padding the plaintext was padded with spaces first and -nopad given, for pkcs7 OpenSSL padded it itself.
KNOWN_ANSWERS = {
    (SUBSCRIPTION, "ecb", "space"): "uyAmO7icn0bancHEs9t0kYHCfdjDxqHkEyGuMBGTXVz3h0mXBu4MzQ==",
    (SUBSCRIPTION, "ecb", "pkcs7"): "uyAmO7icn0bancHEs9t0kYHCfdjDxqHkEyGuMBGTXVyeAc9LxYIEkg==",
    (SUBSCRIPTION, "cbc", "space"): "cZnDXqEvR4AaTsJPHE/R5gq7WzcHnXG83bI3B1fCQel0GFAlcApGFA==",
    (SUBSCRIPTION, "cbc", "pkcs7"): "cZnDXqEvR4AaTsJPHE/R5gq7WzcHnXG83bI3B1fCQenPXCx6znfvBA==",
    (WITH_UPGRADE, "ecb", "space"): "uyAmO7icn0bancHEs9t0kYHCfdjDxqHkEyGuMBGTXVzOmk1iHnSkbbdnEC7QnQnlaiHzHs0gZHFy5pcekj3C"
                                    "+V5vXsJ2jAx6vk1D9GPmwPmpqoT3awxze/EEUES5QgOlidds/CA9n/kz4KiajI+EtQ==",
    (WITH_UPGRADE, "cbc", "pkcs7"): "cZnDXqEvR4AaTsJPHE/R5gq7WzcHnXG83bI3B1fCQekcePv+w2BVrHlX/GYaf0xvuPMiZ1KMc4a1f/MW"
                                    "ogj6g2NDC/Wj7tTboInJkxPZteZdGUnMFJpeFjy8roz7FduljvJPMcZv//glWjK/Daei5w==",
    # 16 bytes, already aligned: space and pkcs7 padding both add a whole block.
    (USERNAME, "ecb", "space"): "GJxAzBEGqNJ0Wvky6BumRJhn1QCsLFdn",
    (USERNAME, "ecb", "pkcs7"): "GJxAzBEGqNJ0Wvky6BumREVc9S82fTs1",
    (USERNAME, "cbc", "space"): "PyJHQmRkn+9IGEtSyOoRnL8DlwvlfRYM",
    (USERNAME, "cbc", "pkcs7"): "PyJHQmRkn+9IGEtSyOoRnHJ5U8dtwnfP",
}


@pytest.mark.parametrize("plaintext,mode,padding", sorted(KNOWN_ANSWERS))
def test_known_answers(plaintext, mode, padding):
    recipe = EncRecipe(mode=CipherMode(mode), padding=Padding(padding), iv=IV)
    key = derive_key(KEY)
    enc = encrypt(key, plaintext, recipe)
    assert enc == KNOWN_ANSWERS[(plaintext, mode, padding)]
    assert decrypt(key, enc, recipe) == plaintext


OPENSSL = shutil.which("openssl")


def openssl_enc(key_hex: str, data: bytes, mode: str, openssl_pads: bool) -> str:
    cipher = "-des-ede3" if mode == "ecb" else "-des-ede3-cbc"
    command = [OPENSSL, "enc", cipher, "-K", key_hex]
    if mode == "cbc":
        command += ["-iv", IV.hex()]
    if not openssl_pads:
        command.append("-nopad")
    result = subprocess.run(command, input=data, capture_output=True, check=True, timeout=10)
    return base64.b64encode(result.stdout).decode("ascii")


@pytest.mark.parametrize("mode", ["ecb", "cbc"])
@pytest.mark.parametrize("padding", ["space", "pkcs7", "zero", "none"])
@pytest.mark.parametrize("plaintext", [SUBSCRIPTION, WITH_UPGRADE, USERNAME, "subscriptionId=1", "x" * 24])
@pytest.mark.parametrize("key_text,encoding", [(KEY, "hex"), ("8745921457", "hexmod"), ("GoldKey2024", "hexmod")])
def test_the_same_as_openssl_des_ede3_for_every_mode_and_padding(mode, padding, plaintext, key_text, encoding):
    assert OPENSSL, "the openssl command is needed: it is the reference these known answers are checked against"
    recipe = EncRecipe(key_encoding=KeyEncoding(encoding), mode=CipherMode(mode), padding=Padding(padding), iv=IV)
    key = derive_key(key_text, recipe.key_encoding)
    data = plaintext.encode()
    if padding == "none" and len(data) % 8:
        with pytest.raises(CCBillConfigurationError):
            encrypt(key, plaintext, recipe)
        return
    if padding == "pkcs7":
        expected = openssl_enc(key.material().hex(), data, mode, openssl_pads=True)
    else:
        expected = openssl_enc(key.material().hex(), pad(data, Padding(padding)), mode, openssl_pads=False)
    enc = encrypt(key, plaintext, recipe)
    assert enc == expected
    assert decrypt(key, enc, recipe) == plaintext


def test_space_padding_always_adds_one_to_eight_spaces():
    assert pad(b"1234567", Padding.SPACE) == b"1234567 "
    assert pad(b"12345678", Padding.SPACE) == b"12345678" + b" " * 8
    assert pad(b"12345678", Padding.ZERO) == b"12345678"
    assert pad(b"123", Padding.ZERO) == b"123" + b"\x00" * 5


def test_key_encodings():
    assert derive_key(KEY).material() == bytes.fromhex(KEY)
    # MagicMembers' "hexmod": G-Z/g-z folded onto hex digits, then '0'-padded to 48 digits.
    assert derive_key("GoldKey2024", KeyEncoding.HEXMOD).material() == bytes.fromhex("085d4e22024".ljust(48, "0"))
    assert derive_key("8745921457", KeyEncoding.HEXMOD).material() == bytes.fromhex("8745921457".ljust(48, "0"))
    assert len(derive_key("0123456789abcdef01234567", KeyEncoding.RAW).material()) == 24
    for text, encoding in [("abc", KeyEncoding.HEX), (KEY + "00", KeyEncoding.HEX), ("g" * 49, KeyEncoding.HEXMOD),
                           ("short", KeyEncoding.RAW), ("key-with-dash", KeyEncoding.HEXMOD)]:
        with pytest.raises(CCBillConfigurationError):
            derive_key(text, encoding)


def test_the_key_never_shows():
    key = derive_key(KEY)
    assert KEY not in repr(key) and KEY not in str(key)
    assert "hidden" in repr(key)
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_the_plaintext_is_the_identity_and_nothing_else():
    query = EncRecipe()
    assert upgrade_plaintext(query, subscription_id="0126015401000000123") == SUBSCRIPTION
    assert upgrade_plaintext(query, username="janedoe") == USERNAME
    assert upgrade_plaintext(query, username="jane doe&co") == "username=jane%20doe%26co"
    with pytest.raises(TypeError):  # the upgrade variables are form fields, never inside enc
        upgrade_plaintext(query, subscription_id="0126015401000000123",  # type: ignore[call-arg]
                          upgrade_variables={"upgradeTypeId": "0015"})
    bare = EncRecipe(plaintext_format=PlaintextFormat.BARE)
    assert upgrade_plaintext(bare, subscription_id="0126015401000000123") == "0126015401000000123"
    with pytest.raises(ValueError):
        upgrade_plaintext(query)


def test_reading_the_identity_back_refuses_anything_more():
    query, bare = EncRecipe(), EncRecipe(plaintext_format=PlaintextFormat.BARE)
    assert identity_from_plaintext(SUBSCRIPTION, query) == ("subscriptionId", "0126015401000000123")
    assert identity_from_plaintext("username=jane%20doe%26co", query) == ("username", "jane doe&co")
    assert identity_from_plaintext("0126015401000000123", bare) == ("subscriptionId", "0126015401000000123")
    assert identity_from_plaintext("janedoe", bare) == ("username", "janedoe")
    for plaintext in (WITH_UPGRADE, "subscriptionId=", "subscriptionId=12x", "custom=1", "janedoe", "",
                      "username=a=b", SUBSCRIPTION + "&custom=7"):
        assert identity_from_plaintext(plaintext, query) is None, plaintext
    assert identity_from_plaintext(SUBSCRIPTION, bare) is None


def test_the_guides_example_key_is_taken_as_merchant_support_hands_it_out():
    # ccbill-subscription-upgrade-system.txt: 'a TripleDES key of "8745921457"' and a 44-character enc for
    # subscriptionId=1234567890 (25 characters -> 32 bytes). The sample enc itself is not reproducible (README).
    assert EncRecipe().key_encoding is KeyEncoding.HEXMOD
    key = derive_key("8745921457")
    enc = encrypt(key, upgrade_plaintext(EncRecipe(), subscription_id="1234567890"))
    assert len(enc) == len("sysl4wpcOfdF80ghzxJ0H/8YVuBGxA+4wqZqXHS48l8=") == 44
    # A 48-hex-digit key means the same bytes under hexmod as under hex: nobody's key changes meaning.
    assert derive_key(KEY).material() == derive_key(KEY, KeyEncoding.HEX).material()
    # Perl's pack("H*") (Crypt::TripleDES pads the passphrase with spaces, which pack reads as 0): hexmod's table.
    assert derive_key("Gg").material() == bytes(24)


def test_a_short_key_is_flagged_as_single_des():
    note = key_strength_note(derive_key("8745921457"))
    assert note is not None and "single DES" in note
    assert key_strength_note(derive_key(KEY)) is None


def test_start_up_messages_say_what_is_wrong_without_the_key():
    for text, encoding, expected in [("", KeyEncoding.HEXMOD, "empty"), ("9" * 49, KeyEncoding.HEXMOD, "49"),
                                     ("8745-9214", KeyEncoding.HEXMOD, "letters and digits"),
                                     ("8745921457", KeyEncoding.HEX, "hexmod"),
                                     ("8745921457", KeyEncoding.RAW, "16 or 24")]:
        with pytest.raises(CCBillConfigurationError, match=expected) as error:
            derive_key(text, encoding)
        assert not text or text not in str(error.value)


def test_the_recipe_from_settings():
    recipe = EncRecipe.from_env({"BILLOPS_UPGRADE_ENC_MODE": "CBC", "BILLOPS_UPGRADE_ENC_PADDING": "pkcs7",
                                 "BILLOPS_UPGRADE_ENC_PLAINTEXT": "bare", "BILLOPS_UPGRADE_ENC_KEY_ENCODING": "hexmod",
                                 "BILLOPS_UPGRADE_ENC_IV": IV.hex()})
    assert (recipe.mode, recipe.padding, recipe.plaintext_format, recipe.key_encoding, recipe.iv) == (
        CipherMode.CBC, Padding.PKCS7, PlaintextFormat.BARE, KeyEncoding.HEXMOD, IV)
    assert EncRecipe.from_env({}) == EncRecipe()
    with pytest.raises(CCBillConfigurationError, match="BILLOPS_UPGRADE_ENC_MODE"):
        EncRecipe.from_env({"BILLOPS_UPGRADE_ENC_MODE": "gcm"})
    with pytest.raises(CCBillConfigurationError, match="16 hex digits"):
        EncRecipe.from_env({"BILLOPS_UPGRADE_ENC_IV": "00"})


@pytest.fixture
def kms(aws_credentials):
    with mock_aws():
        client = boto3.client("kms", region_name="us-east-1")
        key_id = client.create_key(Description="billops upgrade key")["KeyMetadata"]["KeyId"]
        yield client, key_id


def test_the_key_is_held_under_kms_and_decrypted_once(kms):
    client, key_id = kms
    ciphertext = encrypt_key_for_configuration(client, key_id, KEY)
    assert KEY not in ciphertext
    calls = []

    def factory():
        calls.append(1)
        return client

    encryptor = UpgradeEncryptor.from_env({"BILLOPS_UPGRADE_KEY_CIPHERTEXT": ciphertext}, kms_client_factory=factory)
    assert encryptor is not None
    first = encryptor.enc(subscription_id="0126015401000000123")
    second = encryptor.enc(subscription_id="0126015401000000123")
    assert first == second == KNOWN_ANSWERS[(SUBSCRIPTION, "ecb", "space")]
    assert len(calls) == 1  # once per container
    assert KEY not in repr(encryptor._key_provider)


def test_a_ciphertext_made_without_the_encryption_context_is_refused(kms):
    client, key_id = kms
    blob = client.encrypt(KeyId=key_id, Plaintext=KEY.encode())["CiphertextBlob"]
    provider = KmsUpgradeKeyProvider(base64.b64encode(blob).decode(), kms_client_factory=lambda: client)
    with pytest.raises(UpgradeKeyUnavailable, match="KMS could not decrypt") as error:
        provider.get()
    assert KEY not in str(error.value)
    assert ENCRYPTION_CONTEXT  # the context is what binds the ciphertext to this use


def test_bad_ciphertexts(kms):
    client, key_id = kms
    with pytest.raises(UpgradeKeyUnavailable, match="not Base64"):
        KmsUpgradeKeyProvider("%%%", kms_client_factory=lambda: client).get()
    with pytest.raises(UpgradeKeyUnavailable, match="empty"):
        KmsUpgradeKeyProvider("", kms_client_factory=lambda: client).get()
    wrong_key = encrypt_key_for_configuration(client, key_id, "not-a-hex-key")
    with pytest.raises(UpgradeKeyUnavailable, match="letters and digits"):
        KmsUpgradeKeyProvider(wrong_key, kms_client_factory=lambda: client).get()


def test_the_ciphertext_may_live_in_secrets_manager(kms):
    client, key_id = kms
    ciphertext = encrypt_key_for_configuration(client, key_id, KEY)
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    arn = secrets.create_secret(Name="billops/upgrade-key", SecretString=ciphertext)["ARN"]
    encryptor = UpgradeEncryptor.from_env({"BILLOPS_UPGRADE_KEY_SECRET_ARN": arn}, kms_client_factory=lambda: client)
    assert encryptor.enc(username="janedoe") == KNOWN_ANSWERS[(USERNAME, "ecb", "space")]


def test_the_key_is_stored_exactly_as_given(kms):
    client, key_id = kms
    ciphertext = encrypt_key_for_configuration(client, key_id, "8745921457")
    clear = client.decrypt(CiphertextBlob=base64.b64decode(ciphertext), EncryptionContext=ENCRYPTION_CONTEXT)
    assert clear["Plaintext"] == b"8745921457"
    encryptor = UpgradeEncryptor.from_env({"BILLOPS_UPGRADE_KEY_CIPHERTEXT": ciphertext},
                                          kms_client_factory=lambda: client)
    assert encryptor.key().material() == derive_key("8745921457").material()


def test_no_key_configured():
    assert UpgradeEncryptor.from_env({}) is None


def test_the_key_check_of_billops_ccbill_check():
    from billops.ccbill.upgrade_test_link import upgrade_key_check

    short = UpgradeEncryptor(lambda: derive_key("8745921457"))
    verdict, reason = upgrade_key_check(short)
    assert verdict == "pass" and "single DES" in reason and "8745921457" not in reason
    assert upgrade_key_check(UpgradeEncryptor(lambda: derive_key(KEY)))[0] == "pass"
    assert upgrade_key_check(None)[0] == "cannot tell"

    def unusable():
        raise UpgradeKeyUnavailable("KMS could not decrypt the upgrade key (AccessDeniedException)")

    assert upgrade_key_check(UpgradeEncryptor(unusable)) == (
        "fail", "KMS could not decrypt the upgrade key (AccessDeniedException)")
