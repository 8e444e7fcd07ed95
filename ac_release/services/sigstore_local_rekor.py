"""Rekor v1 for the local Sigstore instance: an append-only RFC 6962 Merkle log persisted as JSON lines."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from ac_release.clients import faults
from ac_release.core.errors import ReleaseError
from ac_release.services.sigstore_local_state import key_id

LOG_NAME = "rekor.ac-release.local"
# A failpoint of the crash tests (AC_RELEASE_FAULT, clients/faults.py): the append writes half its line and kills the
# service's process group.
APPEND_FAULT = "during:rekor-append"
_HASHEDREKORD_ALGORITHMS = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}

_logger = logging.getLogger(__name__)


class EntryRejected(Exception):
    """The proposed entry is malformed, of an unsupported kind, or its signature does not verify."""


class DuplicateEntry(Exception):
    """The log already holds this exact entry (Rekor answers 409)."""


# --- RFC 6962 Merkle tree ------------------------------------------------------------------------


def leaf_hash(entry_body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry_body).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """Leaf hashes of an append-only log, with roots and inclusion paths per RFC 6962 section 2.1."""

    def __init__(self) -> None:
        self.leaves: list[bytes] = []
        # Complete subtrees (power-of-two size) never change once filled, so their roots are cached.
        self._complete_subtree_roots: dict[tuple[int, int], bytes] = {}

    def append(self, leaf: bytes) -> None:
        self.leaves.append(leaf)

    def root(self, size: int) -> bytes:
        if size == 0:
            return hashlib.sha256(b"").digest()
        return self._subtree_root(0, size)

    def inclusion_path(self, index: int, size: int) -> list[bytes]:
        """Sibling hashes from the leaf upwards: RFC 6962 PATH(m, D[0:n])."""
        if not 0 <= index < size <= len(self.leaves):
            raise IndexError(f"leaf {index} is not in a tree of size {size}")
        path: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            split = start + _largest_power_of_two_below(end - start)
            if index < split:
                path.append(self._subtree_root(split, end))
                end = split
            else:
                path.append(self._subtree_root(start, split))
                start = split
        return path[::-1]

    def _subtree_root(self, start: int, end: int) -> bytes:
        size = end - start
        if size == 1:
            return self.leaves[start]
        is_complete = size & (size - 1) == 0
        if is_complete and (start, end) in self._complete_subtree_roots:
            return self._complete_subtree_roots[(start, end)]
        split = start + _largest_power_of_two_below(size)
        root = node_hash(self._subtree_root(start, split), self._subtree_root(split, end))
        if is_complete:
            self._complete_subtree_roots[(start, end)] = root
        return root


# --- Entry kinds ---------------------------------------------------------------------------------


def canonicalize_proposed_entry(proposed: object) -> bytes:
    """Check a proposed hashedrekord/dsse 0.0.1 entry and return the canonical body Rekor stores."""
    if not isinstance(proposed, dict) or proposed.get("apiVersion") != "0.0.1":
        raise EntryRejected("expected an entry with apiVersion 0.0.1")
    try:
        if proposed.get("kind") == "hashedrekord":
            return _canonical_hashedrekord(proposed["spec"])
        if proposed.get("kind") == "dsse":
            return _canonical_dsse(proposed["spec"]["proposedContent"])
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise EntryRejected(f"malformed {proposed.get('kind')} entry: {exc}") from exc
    raise EntryRejected("only hashedrekord and dsse entries are supported")


def _canonical_hashedrekord(spec: dict) -> bytes:
    signature_b64 = spec["signature"]["content"]
    verifier_b64 = spec["signature"]["publicKey"]["content"]
    algorithm = spec["data"]["hash"]["algorithm"]
    digest_hex = spec["data"]["hash"]["value"]
    if algorithm not in _HASHEDREKORD_ALGORITHMS:
        raise EntryRejected(f"unsupported hash algorithm {algorithm!r}")
    public_key = _load_verifier(verifier_b64)
    try:
        public_key.verify(
            base64.b64decode(signature_b64, validate=True),
            bytes.fromhex(digest_hex),
            ec.ECDSA(Prehashed(_HASHEDREKORD_ALGORITHMS[algorithm])),
        )
    except InvalidSignature as exc:
        raise EntryRejected("signature does not verify against the digest and key") from exc
    body = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": algorithm, "value": digest_hex}},
            "signature": {"content": signature_b64, "publicKey": {"content": verifier_b64}},
        },
    }
    return rfc8785.dumps(body)


def _canonical_dsse(proposed_content: dict) -> bytes:
    envelope_text = proposed_content["envelope"]
    envelope = json.loads(envelope_text)
    payload = base64.b64decode(envelope["payload"], validate=True)
    pae = _dsse_pae(envelope["payloadType"], payload)
    verifiers = {v: _load_verifier(v) for v in proposed_content["verifiers"]}
    signatures = []
    for entry in envelope["signatures"]:
        signature = base64.b64decode(entry["sig"], validate=True)
        verifier_b64 = _first_verifier_of(verifiers, signature, pae)
        signatures.append({"signature": base64.b64encode(signature).decode(), "verifier": verifier_b64})
    if not signatures:
        raise EntryRejected("DSSE envelope has no signature")
    body = {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {
                "algorithm": "sha256",
                "value": hashlib.sha256(envelope_text.encode()).hexdigest(),
            },
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": signatures,
        },
    }
    return rfc8785.dumps(body)


def _dsse_pae(payload_type: str, payload: bytes) -> bytes:
    return f"DSSEv1 {len(payload_type)} {payload_type} {len(payload)} ".encode() + payload


def _first_verifier_of(verifiers: dict[str, ec.EllipticCurvePublicKey], signature: bytes, data: bytes) -> str:
    for verifier_b64, public_key in verifiers.items():
        try:
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            return verifier_b64
        except InvalidSignature:
            continue
    raise EntryRejected("a DSSE signature verifies against none of the verifiers")


def _load_verifier(verifier_b64: str) -> ec.EllipticCurvePublicKey:
    """A verifier is a base64 PEM certificate or public key, as the sigstore client sends it."""
    pem = base64.b64decode(verifier_b64, validate=True)
    if b"CERTIFICATE" in pem:
        public_key = x509.load_pem_x509_certificate(pem).public_key()
    else:
        public_key = serialization.load_pem_public_key(pem)
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise EntryRejected("only ECDSA verifiers are supported")
    return public_key


# --- The log -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredEntry:
    log_index: int
    integrated_time: int
    body: bytes
    signed_entry_timestamp: bytes


class TransparencyLog:
    """A Rekor v1 log: entries, signed entry timestamps, inclusion proofs and signed checkpoints."""

    def __init__(self, log_dir: Path, signing_key: ec.EllipticCurvePrivateKey, tree_id: int) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self._entries_path = log_dir / "entries.jsonl"
        self._signing_key = signing_key
        self._tree_id = tree_id
        self._log_id = key_id(signing_key.public_key())
        self._lock = threading.Lock()
        self._entries: list[StoredEntry] = []
        self._index_by_leaf: dict[bytes, int] = {}
        self._tree = MerkleTree()
        for entry in self._read_entries():
            self._remember(entry)
        if not self._entries:
            self.append(self._genesis_body())

    def _genesis_body(self) -> bytes:
        """Entry 0 of a new log: the log signs its own start. cosign (sigstore-go) takes a client entry at logIndex 0
        for a missing value ("nil value in transaction log entry"), so no client entry may get index 0. A log that
        already holds entries (an older state directory) keeps them as they are, and its old bundles verify."""
        digest = hashlib.sha256(f"{LOG_NAME} - {self._tree_id}: log start".encode()).digest()
        signature = self._signing_key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        return _canonical_hashedrekord(
            {
                "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                "signature": {
                    "content": base64.b64encode(signature).decode(),
                    "publicKey": {"content": base64.b64encode(self.public_key_pem()).decode()},
                },
            }
        )

    @property
    def size(self) -> int:
        return len(self._entries)

    def append(self, body: bytes) -> dict:
        """Integrate `body` and return the Rekor v1 response for it."""
        with self._lock:
            if leaf_hash(body) in self._index_by_leaf:
                raise DuplicateEntry("an equivalent entry already exists in the transparency log")
            log_index = len(self._entries)
            integrated_time = int(time.time())
            entry = StoredEntry(
                log_index=log_index,
                integrated_time=integrated_time,
                body=body,
                signed_entry_timestamp=self._sign_entry_timestamp(body, integrated_time, log_index),
            )
            self._persist(entry)
            self._remember(entry)
            return self._response_for(entry)

    def entry_by_index(self, log_index: int) -> dict | None:
        with self._lock:
            if not 0 <= log_index < len(self._entries):
                return None
            return self._response_for(self._entries[log_index])

    def entry_by_uuid(self, entry_uuid: str) -> dict | None:
        """Look an entry up by its UUID (leaf hash hex) or entry id (tree id + UUID)."""
        try:
            leaf = bytes.fromhex(entry_uuid[-64:])
        except ValueError:
            return None
        with self._lock:
            log_index = self._index_by_leaf.get(leaf)
            return None if log_index is None else self._response_for(self._entries[log_index])

    def log_info(self) -> dict:
        with self._lock:
            size = len(self._entries)
            return {
                "rootHash": self._tree.root(size).hex(),
                "treeSize": size,
                "signedTreeHead": self._signed_checkpoint(size),
                "treeID": str(self._tree_id),
                "inactiveShards": [],
            }

    def public_key_pem(self) -> bytes:
        return self._signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def _response_for(self, entry: StoredEntry) -> dict:
        size = len(self._entries)
        entry_uuid = leaf_hash(entry.body).hex()
        return {
            f"{self._tree_id:016x}{entry_uuid}": {
                "body": base64.b64encode(entry.body).decode(),
                "integratedTime": entry.integrated_time,
                "logID": self._log_id.hex(),
                "logIndex": entry.log_index,
                "verification": {
                    "signedEntryTimestamp": base64.b64encode(entry.signed_entry_timestamp).decode(),
                    "inclusionProof": {
                        "logIndex": entry.log_index,
                        "rootHash": self._tree.root(size).hex(),
                        "treeSize": size,
                        "hashes": [h.hex() for h in self._tree.inclusion_path(entry.log_index, size)],
                        "checkpoint": self._signed_checkpoint(size),
                    },
                },
            }
        }

    def _sign_entry_timestamp(self, body: bytes, integrated_time: int, log_index: int) -> bytes:
        # The client rebuilds exactly this RFC 8785 document from the bundle to check the promise.
        promise = {
            "body": base64.b64encode(body).decode(),
            "integratedTime": integrated_time,
            "logID": self._log_id.hex(),
            "logIndex": log_index,
        }
        return self._signing_key.sign(rfc8785.dumps(promise), ec.ECDSA(hashes.SHA256()))

    def _signed_checkpoint(self, size: int) -> str:
        """A signed note: origin, size, root, blank line, then `— name base64(key hint + signature)`."""
        note = f"{LOG_NAME} - {self._tree_id}\n{size}\n{base64.b64encode(self._tree.root(size)).decode()}\n"
        signature = self._signing_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        # The client matches the hint against the first 4 bytes of the log id (sha256 of the SPKI).
        signed = base64.b64encode(self._log_id[:4] + signature).decode()
        return f"{note}\n\u2014 {LOG_NAME} {signed}\n"

    def _remember(self, entry: StoredEntry) -> None:
        leaf = leaf_hash(entry.body)
        self._entries.append(entry)
        self._index_by_leaf[leaf] = entry.log_index
        self._tree.append(leaf)

    def _persist(self, entry: StoredEntry) -> None:
        """Append the entry as one write of a whole line, on the disk before the entry is answered; a write or sync
        that fails cuts the file back, so that no partial line stays before the next entry."""
        record = {
            "logIndex": entry.log_index,
            "integratedTime": entry.integrated_time,
            "body": base64.b64encode(entry.body).decode(),
            "signedEntryTimestamp": base64.b64encode(entry.signed_entry_timestamp).decode(),
        }
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        fd = os.open(self._entries_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size_before = os.fstat(fd).st_size
            try:
                if faults.armed(APPEND_FAULT):  # the crash tests: half a line on disk, then kill -9
                    os.write(fd, line[: len(line) // 2])
                    faults.reached(APPEND_FAULT)
                _write_whole(fd, line)
                os.fsync(fd)
            except BaseException:
                os.ftruncate(fd, size_before)
                raise
        finally:
            os.close(fd)

    def _read_entries(self) -> list[StoredEntry]:
        """The complete entries of the file. A last line that is not a whole record (a crash in the middle of an
        append: never answered to a client) is cut off with a log line; a bad line before the last refuses."""
        if not self._entries_path.exists():
            return []
        data = self._entries_path.read_bytes()
        entries: list[StoredEntry] = []
        offset = 0
        while offset < len(data):
            newline = data.find(b"\n", offset)
            end = len(data) if newline < 0 else newline + 1
            entry = self._parse_line(data[offset:end], len(entries))
            if entry is None:
                if end < len(data):
                    raise ReleaseError(
                        f"rekor log {self._entries_path}: line {len(entries) + 1} is not a log entry and is not the "
                        "last line, so no crash left it: the log is corrupted; restore the file from a backup "
                        "(the service does not start on it)"
                    )
                self._cut_torn_tail(offset, len(data) - offset, len(entries))
                break
            entries.append(entry)
            offset = end
        return entries

    def _parse_line(self, line: bytes, expected_index: int) -> StoredEntry | None:
        """The entry on a whole line (ending in a newline), or None if the line is not one."""
        if not line.endswith(b"\n"):
            return None
        try:
            record = json.loads(line)
            entry = StoredEntry(
                log_index=record["logIndex"],
                integrated_time=record["integratedTime"],
                body=base64.b64decode(record["body"], validate=True),
                signed_entry_timestamp=base64.b64decode(record["signedEntryTimestamp"], validate=True),
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if entry.log_index != expected_index:
            raise ReleaseError(
                f"rekor log {self._entries_path}: line {expected_index + 1} holds entry {entry.log_index}, expected "
                f"entry {expected_index}: the log is corrupted; restore the file from a backup"
            )
        return entry

    def _cut_torn_tail(self, offset: int, length: int, kept: int) -> None:
        with self._entries_path.open("r+b") as log_file:
            log_file.truncate(offset)
            log_file.flush()
            os.fsync(log_file.fileno())
        _logger.warning(
            "rekor log %s: cut off a torn last line (%d bytes, where entry %d was being written; it was never "
            "answered to a client); kept entries 0-%d",
            self._entries_path,
            length,
            kept,
            kept - 1,
        )


def _write_whole(fd: int, data: bytes) -> None:
    """One write(2) of the line; a short write (a full disk) is an error, the caller cuts the file back."""
    written = os.write(fd, data)
    if written != len(data):
        raise OSError(f"short write to the rekor log: {written} of {len(data)} bytes")
