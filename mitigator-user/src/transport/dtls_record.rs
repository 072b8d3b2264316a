//! The DTLS 1.2 record layer of an established session, without OpenSSL: what an idle
//! session keeps once its handshake is over (keys, epoch, sequence numbers, replay
//! window), in a few hundred bytes instead of OpenSSL's tens of kilobytes per `SSL`.
//! Pure: bytes in, bytes out, no I/O.
//!
//! Why hand-written: OpenSSL runs the handshake (cookies, PSK, X.509, all of it stays
//! there), but an `SSL` object cannot shed its handshake state, and no maintained Rust
//! crate offers a DTLS 1.2 record layer that can be detached from its own handshake and
//! fed the keys of another. The primitives are RustCrypto's (aes-gcm, ccm,
//! chacha20poly1305, hmac, sha2); this module only frames records around them.
//!
//! What it follows:
//! - key block: RFC 5246 section 6.3, with the PRF of section 5 (P_SHA256, or P_SHA384
//!   for the suites that name it);
//! - AEAD records: RFC 5246 section 6.2.3.3 (additional data = seq_num, type, version,
//!   length; in DTLS, seq_num is epoch and sequence number, RFC 6347 section 4.1.2.1);
//!   AES-GCM nonces are a 4-byte salt and an 8-byte explicit nonce (RFC 5288 section
//!   3), as are AES-CCM's (RFC 6655 section 3; CCM-8, RFC 7251, only shortens the tag);
//!   ChaCha20-Poly1305 has no explicit nonce: the 12-byte IV XOR the padded seq_num
//!   (RFC 7905 section 2);
//! - the record header of RFC 6347 section 4.1 and its anti-replay window (4.1.2.6);
//!   invalid records are dropped silently, never ending the session (4.1.2.7).
//!
//! Only the suites [`Suite::from_openssl_name`] knows are offered by the server (see
//! `dtls::build_context`): a session on any other could not leave OpenSSL.

use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes128;
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use ccm::consts::{U12, U16, U8};
use ccm::Ccm;
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384};

/// RFC 5246 section 6.2.1 / appendix A.1: ContentType.
pub const CHANGE_CIPHER_SPEC: u8 = 20;
pub const ALERT: u8 = 21;
pub const HANDSHAKE: u8 = 22;
pub const APPLICATION_DATA: u8 = 23;
/// RFC 6347 section 4.1: DTLS 1.2 is {254, 253}.
const DTLS12: [u8; 2] = [0xfe, 0xfd];
/// RFC 5246 section 7.4: HandshakeType finished(20).
const FINISHED: u8 = 20;
/// RFC 5246 section 7.2: AlertLevel warning(1), fatal(2); close_notify(0).
const ALERT_WARNING: u8 = 1;
const ALERT_FATAL: u8 = 2;
const CLOSE_NOTIFY: u8 = 0;

/// type, version, epoch, sequence number, length (RFC 6347 section 4.1).
pub const HEADER_LEN: usize = 13;
/// Sequence numbers are 48 bits.
const SEQ_MAX: u64 = (1 << 48) - 1;
/// Anti-replay window size (RFC 6347 section 4.1.2.6: "at least 32 ... 64 preferred").
const WINDOW: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    Aes128Gcm,
    Aes256Gcm,
    Aes128Ccm,
    Aes128Ccm8,
    Chacha20Poly1305,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrfHash {
    Sha256,
    Sha384,
}

impl Suite {
    /// The record protection and PRF of an OpenSSL cipher name (`SSL_CIPHER_get_name`);
    /// None for suites this layer does not implement (CBC, non-AEAD).
    pub fn from_openssl_name(name: &str) -> Option<Suite> {
        Some(match name {
            "ECDHE-ECDSA-AES128-GCM-SHA256" | "PSK-AES128-GCM-SHA256" => Suite::Aes128Gcm,
            "ECDHE-ECDSA-AES256-GCM-SHA384" | "PSK-AES256-GCM-SHA384" => Suite::Aes256Gcm,
            "ECDHE-ECDSA-AES128-CCM" | "PSK-AES128-CCM" => Suite::Aes128Ccm,
            "ECDHE-ECDSA-AES128-CCM8" | "PSK-AES128-CCM8" => Suite::Aes128Ccm8,
            "ECDHE-ECDSA-CHACHA20-POLY1305" | "PSK-CHACHA20-POLY1305" | "ECDHE-PSK-CHACHA20-POLY1305" => {
                Suite::Chacha20Poly1305
            }
            _ => return None,
        })
    }

    fn prf(self) -> PrfHash {
        match self {
            Suite::Aes256Gcm => PrfHash::Sha384,
            _ => PrfHash::Sha256,
        }
    }

    fn key_len(self) -> usize {
        match self {
            Suite::Aes256Gcm | Suite::Chacha20Poly1305 => 32,
            _ => 16,
        }
    }

    /// The implicit part of the nonce taken from the key block.
    fn fixed_iv_len(self) -> usize {
        match self {
            Suite::Chacha20Poly1305 => 12,
            _ => 4,
        }
    }

    /// Bytes of nonce carried in each record.
    fn explicit_nonce_len(self) -> usize {
        match self {
            Suite::Chacha20Poly1305 => 0,
            _ => 8,
        }
    }

    fn tag_len(self) -> usize {
        match self {
            Suite::Aes128Ccm8 => 8,
            _ => 16,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record truncated or malformed")]
    Malformed,
    #[error("record of epoch {0}, not the session's")]
    WrongEpoch(u16),
    #[error("record {0} replayed or too old")]
    Replayed(u64),
    #[error("record failed authentication")]
    BadMac,
    #[error("sequence numbers exhausted")]
    SeqExhausted,
}

// ---------------------------------------------------------------------------------
// Key derivation

/// RFC 5246 section 5: P_hash(secret, label + seed), `out.len()` bytes.
fn prf(hash: PrfHash, secret: &[u8], label: &[u8], seed: &[u8], out: &mut [u8]) {
    match hash {
        PrfHash::Sha256 => p_hash::<Hmac<Sha256>>(secret, label, seed, out),
        PrfHash::Sha384 => p_hash::<Hmac<Sha384>>(secret, label, seed, out),
    }
}

fn p_hash<M: Mac + KeyInit>(secret: &[u8], label: &[u8], seed: &[u8], out: &mut [u8]) {
    let mac = |parts: &[&[u8]]| {
        let mut m = <M as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
        parts.iter().for_each(|p| m.update(p));
        m.finalize().into_bytes()
    };
    let mut a = mac(&[label, seed]); // A(1)
    for chunk in out.chunks_mut(a.len()) {
        let block = mac(&[&a, label, seed]);
        chunk.copy_from_slice(&block[..chunk.len()]);
        a = mac(&[&a]);
    }
}

/// One direction's key and implicit IV.
struct DirectionKeys {
    key: Vec<u8>,
    iv: [u8; 12],
}

/// RFC 5246 section 6.3: key_block = PRF(master_secret, "key expansion",
/// server_random + client_random), cut into client/server MAC keys (none for AEAD),
/// client/server keys, client/server IVs. Returns (client write, server write).
fn key_block(suite: Suite, master: &[u8], client_random: &[u8], server_random: &[u8]) -> (DirectionKeys, DirectionKeys) {
    let (k, iv) = (suite.key_len(), suite.fixed_iv_len());
    let mut block = vec![0u8; 2 * (k + iv)];
    let seed = [server_random, client_random].concat();
    prf(suite.prf(), master, b"key expansion", &seed, &mut block);
    let ivs = |at: usize| {
        let mut out = [0u8; 12];
        out[..iv].copy_from_slice(&block[at..at + iv]);
        out
    };
    let client = DirectionKeys { key: block[..k].to_vec(), iv: ivs(2 * k) };
    let server = DirectionKeys { key: block[k..2 * k].to_vec(), iv: ivs(2 * k + iv) };
    (client, server)
}

// ---------------------------------------------------------------------------------
// Record protection

/// The AEAD of one direction (boxed: the key schedules dwarf the rest).
enum Cipher {
    Aes128Gcm(Box<Aes128Gcm>),
    Aes256Gcm(Box<Aes256Gcm>),
    Aes128Ccm(Box<Ccm<Aes128, U16, U12>>),
    Aes128Ccm8(Box<Ccm<Aes128, U8, U12>>),
    Chacha20Poly1305(Box<ChaCha20Poly1305>),
}

impl Cipher {
    fn new(suite: Suite, key: &[u8]) -> Cipher {
        // The key block was cut at the suite's key length, which is the cipher's.
        fn boxed<C: KeyInit>(key: &[u8]) -> Box<C> {
            Box::new(C::new_from_slice(key).expect("key of the suite's length"))
        }
        match suite {
            Suite::Aes128Gcm => Cipher::Aes128Gcm(boxed(key)),
            Suite::Aes256Gcm => Cipher::Aes256Gcm(boxed(key)),
            Suite::Aes128Ccm => Cipher::Aes128Ccm(boxed(key)),
            Suite::Aes128Ccm8 => Cipher::Aes128Ccm8(boxed(key)),
            Suite::Chacha20Poly1305 => Cipher::Chacha20Poly1305(boxed(key)),
        }
    }

    fn seal(&self, nonce: &[u8; 12], aad: &[u8], msg: &[u8]) -> Vec<u8> {
        let (n, p) = (GenericArray::from_slice(nonce), Payload { msg, aad });
        let sealed = match self {
            Cipher::Aes128Gcm(c) => c.encrypt(n, p),
            Cipher::Aes256Gcm(c) => c.encrypt(n, p),
            Cipher::Aes128Ccm(c) => c.encrypt(n, p),
            Cipher::Aes128Ccm8(c) => c.encrypt(n, p),
            Cipher::Chacha20Poly1305(c) => c.encrypt(n, p),
        };
        // Only fails for messages longer than any record can be.
        sealed.expect("AEAD encryption of a record")
    }

    fn open(&self, nonce: &[u8; 12], aad: &[u8], msg: &[u8]) -> Result<Vec<u8>, RecordError> {
        let (n, p) = (GenericArray::from_slice(nonce), Payload { msg, aad });
        let opened = match self {
            Cipher::Aes128Gcm(c) => c.decrypt(n, p),
            Cipher::Aes256Gcm(c) => c.decrypt(n, p),
            Cipher::Aes128Ccm(c) => c.decrypt(n, p),
            Cipher::Aes128Ccm8(c) => c.decrypt(n, p),
            Cipher::Chacha20Poly1305(c) => c.decrypt(n, p),
        };
        opened.map_err(|_| RecordError::BadMac)
    }
}

/// One direction: cipher, implicit IV, epoch.
struct Protection {
    suite: Suite,
    cipher: Cipher,
    iv: [u8; 12],
    epoch: u16,
}

impl Protection {
    fn new(suite: Suite, keys: DirectionKeys, epoch: u16) -> Self {
        Protection { suite, cipher: Cipher::new(suite, &keys.key), iv: keys.iv, epoch }
    }

    /// seq_num of RFC 6347 section 4.1.2.1: epoch and sequence number, 8 bytes.
    fn seq_num(&self, seq: u64) -> [u8; 8] {
        (u64::from(self.epoch) << 48 | seq).to_be_bytes()
    }

    fn nonce(&self, seq_num: &[u8; 8], explicit: &[u8]) -> [u8; 12] {
        let mut nonce = self.iv;
        if self.suite.explicit_nonce_len() == 0 {
            nonce[4..].iter_mut().zip(seq_num).for_each(|(n, s)| *n ^= s);
        } else {
            nonce[4..].copy_from_slice(explicit);
        }
        nonce
    }
}

fn aad(seq_num: &[u8; 8], ctype: u8, len: usize) -> [u8; 13] {
    let mut a = [0u8; 13];
    a[..8].copy_from_slice(seq_num);
    a[8] = ctype;
    a[9..11].copy_from_slice(&DTLS12);
    a[11..].copy_from_slice(&(len as u16).to_be_bytes());
    a
}

/// The keys of an established session, server side: (our reader, our writer).
/// `next_write_seq` follows the last record OpenSSL sent in `epoch` (our Finished).
pub fn server_halves(
    suite: Suite,
    master: &[u8],
    client_random: &[u8],
    server_random: &[u8],
    epoch: u16,
    next_write_seq: u64,
) -> (Opener, Sealer) {
    let (client, server) = key_block(suite, master, client_random, server_random);
    let opener = Opener { prot: Protection::new(suite, client, epoch), window: ReplayWindow::default() };
    let sealer = Sealer { prot: Protection::new(suite, server, epoch), next_seq: next_write_seq };
    (opener, sealer)
}

/// Protects what we send.
pub struct Sealer {
    prot: Protection,
    next_seq: u64,
}

impl Sealer {
    /// One record of `ctype` carrying `plaintext`.
    pub fn seal(&mut self, ctype: u8, plaintext: &[u8]) -> Result<Vec<u8>, RecordError> {
        if self.next_seq > SEQ_MAX {
            return Err(RecordError::SeqExhausted);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let p = &self.prot;
        let seq_num = p.seq_num(seq);
        // The explicit nonce is the seq_num: unique per key, as RFC 5288 section 3 asks.
        let explicit = &seq_num[..p.suite.explicit_nonce_len()];
        let body = p.cipher.seal(&p.nonce(&seq_num, explicit), &aad(&seq_num, ctype, plaintext.len()), plaintext);
        let mut out = Vec::with_capacity(HEADER_LEN + explicit.len() + body.len());
        out.push(ctype);
        out.extend_from_slice(&DTLS12);
        out.extend_from_slice(&seq_num);
        out.extend_from_slice(&((explicit.len() + body.len()) as u16).to_be_bytes());
        out.extend_from_slice(explicit);
        out.extend_from_slice(&body);
        Ok(out)
    }

    pub fn seal_data(&mut self, data: &[u8]) -> Result<Vec<u8>, RecordError> {
        self.seal(APPLICATION_DATA, data)
    }

    /// Our close_notify alert (RFC 5246 section 7.2.1).
    pub fn close_notify(&mut self) -> Result<Vec<u8>, RecordError> {
        self.seal(ALERT, &[ALERT_WARNING, CLOSE_NOTIFY])
    }
}

/// The header of one record of a datagram, and the whole record.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub ctype: u8,
    pub epoch: u16,
    pub seq: u64,
    /// Header included (the AEAD needs only the fragment, the caller may want it all).
    pub bytes: &'a [u8],
}

impl Record<'_> {
    fn fragment(&self) -> &[u8] {
        &self.bytes[HEADER_LEN..]
    }
}

/// The records of a datagram (RFC 6347 section 4.1: several may share one); stops at
/// the first one that does not parse, which ends what can be read of the datagram.
pub fn records(mut dgram: &[u8]) -> impl Iterator<Item = Result<Record<'_>, RecordError>> {
    std::iter::from_fn(move || {
        if dgram.is_empty() {
            return None;
        }
        let parsed = parse_record(dgram);
        dgram = match parsed {
            Ok(r) => &dgram[r.bytes.len()..],
            Err(_) => &[],
        };
        Some(parsed)
    })
}

fn parse_record(d: &[u8]) -> Result<Record<'_>, RecordError> {
    if d.len() < HEADER_LEN || d[1] != DTLS12[0] {
        return Err(RecordError::Malformed);
    }
    let len = usize::from(u16::from_be_bytes([d[11], d[12]]));
    let bytes = d.get(..HEADER_LEN + len).ok_or(RecordError::Malformed)?;
    let mut seq = [0u8; 8];
    seq[2..].copy_from_slice(&d[5..11]);
    Ok(Record { ctype: d[0], epoch: u16::from_be_bytes([d[3], d[4]]), seq: u64::from_be_bytes(seq), bytes })
}

/// Anti-replay window (RFC 6347 section 4.1.2.6): the highest sequence number
/// authenticated so far, and a bitmap of the `WINDOW` numbers up to it.
#[derive(Default)]
struct ReplayWindow {
    top: Option<u64>,
    /// Bit i: top - i was received.
    bits: u64,
}

impl ReplayWindow {
    fn fresh(&self, seq: u64) -> bool {
        match self.top {
            None => true,
            Some(top) if seq > top => true,
            Some(top) => top - seq < WINDOW && self.bits & (1 << (top - seq)) == 0,
        }
    }

    /// Called only once the record authenticated, so forgeries cannot move the window.
    fn mark(&mut self, seq: u64) {
        match self.top {
            Some(top) if seq <= top => self.bits |= 1 << (top - seq),
            Some(top) => {
                let shift = seq - top;
                self.bits = if shift >= WINDOW { 1 } else { self.bits << shift | 1 };
                self.top = Some(seq);
            }
            None => {
                self.bits = 1;
                self.top = Some(seq);
            }
        }
    }
}

/// What an authenticated record means to the session.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    Data(Vec<u8>),
    /// close_notify or a fatal alert: the session is over.
    Closed { fatal: bool, description: u8 },
    /// The peer sent its Finished again: it did not get our last flight.
    FinishedAgain,
    /// Authenticated but nothing to do (a warning alert, other handshake messages).
    Ignored,
}

/// Removes protection from what the peer sends.
pub struct Opener {
    prot: Protection,
    window: ReplayWindow,
}

impl Opener {
    /// Authenticates and decrypts one record; replays, other epochs and forgeries are
    /// errors that leave the session as it was.
    pub fn open(&mut self, r: &Record) -> Result<Inbound, RecordError> {
        let p = &self.prot;
        if r.epoch != p.epoch {
            return Err(RecordError::WrongEpoch(r.epoch));
        }
        if !self.window.fresh(r.seq) {
            return Err(RecordError::Replayed(r.seq));
        }
        let (en, tag) = (p.suite.explicit_nonce_len(), p.suite.tag_len());
        let frag = r.fragment();
        if frag.len() < en + tag {
            return Err(RecordError::Malformed);
        }
        let seq_num = p.seq_num(r.seq);
        let aad = aad(&seq_num, r.ctype, frag.len() - en - tag);
        let plain = p.cipher.open(&p.nonce(&seq_num, &frag[..en]), &aad, &frag[en..])?;
        self.window.mark(r.seq);
        Ok(meaning(r.ctype, plain))
    }
}

fn meaning(ctype: u8, plain: Vec<u8>) -> Inbound {
    match (ctype, plain.as_slice()) {
        (APPLICATION_DATA, _) => Inbound::Data(plain),
        (ALERT, [level, description]) if *level == ALERT_FATAL || *description == CLOSE_NOTIFY => {
            Inbound::Closed { fatal: *level == ALERT_FATAL, description: *description }
        }
        (HANDSHAKE, [FINISHED, ..]) => Inbound::FinishedAgain,
        _ => Inbound::Ignored,
    }
}

/// The (epoch, sequence number) of the latest record in a flight we sent: our writer
/// continues after our Finished, or the peer's replay window would drop what we send.
pub fn last_record(flight: &[Vec<u8>]) -> Option<(u16, u64)> {
    flight.iter().flat_map(|d| records(d)).filter_map(Result::ok).map(|r| (r.epoch, r.seq)).max()
}

#[cfg(test)]
mod tests {
    //! Against OpenSSL itself: a client `SSL` and a server `SSL` shake hands in memory,
    //! then the server's side is replaced by this layer, fed the server's keys.

    use super::*;
    use crate::transport::dtls::DgramIo;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::error::ErrorStack;
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::ssl::{ErrorCode, Ssl, SslContext, SslMethod, SslOptions, SslStream, SslVerifyMode, SslVersion};
    use openssl::x509::X509;

    const PSK: &[u8] = b"0123456789abcdef";
    const SUITES: &[&str] = &[
        "PSK-AES128-CCM8",
        "PSK-AES128-CCM",
        "PSK-AES128-GCM-SHA256",
        "PSK-AES256-GCM-SHA384",
        "PSK-CHACHA20-POLY1305",
        "ECDHE-PSK-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-CCM8",
        "ECDHE-ECDSA-AES128-CCM",
    ];

    fn self_signed() -> Result<(X509, PKey<Private>), ErrorStack> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
        let mut b = X509::builder()?;
        b.set_pubkey(&key)?;
        b.set_not_before(&*openssl::asn1::Asn1Time::days_from_now(0)?)?;
        b.set_not_after(&*openssl::asn1::Asn1Time::days_from_now(1)?)?;
        b.sign(&key, openssl::hash::MessageDigest::sha256())?;
        Ok((b.build(), key))
    }

    fn context(suite: &str, server: bool) -> Result<SslContext, ErrorStack> {
        let mut b = openssl::ssl::SslContextBuilder::new(SslMethod::dtls())?;
        b.set_min_proto_version(Some(SslVersion::DTLS1_2))?;
        b.set_options(SslOptions::NO_QUERY_MTU);
        b.set_cipher_list(suite)?;
        b.set_verify(SslVerifyMode::NONE);
        if server {
            let (cert, key) = self_signed()?;
            b.set_certificate(&cert)?;
            b.set_private_key(&key)?;
            b.set_psk_server_callback(|_, _, out| {
                out[..PSK.len()].copy_from_slice(PSK);
                Ok(PSK.len())
            });
        } else {
            b.set_psk_client_callback(|_, _, id, out| {
                id[..2].copy_from_slice(b"c\0");
                out[..PSK.len()].copy_from_slice(PSK);
                Ok(PSK.len())
            });
        }
        Ok(b.build())
    }

    fn stream(ctx: &SslContext, server: bool) -> SslStream<DgramIo> {
        let mut ssl = Ssl::new(ctx).unwrap();
        ssl.set_mtu(1232).unwrap();
        if server {
            ssl.set_accept_state()
        } else {
            ssl.set_connect_state()
        }
        SslStream::new(ssl, DgramIo::default()).unwrap()
    }

    /// Moves what `from` sent into `to`'s inbox; returns the datagrams.
    fn carry(from: &mut SslStream<DgramIo>, to: &mut SslStream<DgramIo>) -> Vec<Vec<u8>> {
        let sent: Vec<Vec<u8>> = from.get_mut().outbox.drain(..).collect();
        to.get_mut().inbox.extend(sent.iter().cloned());
        sent
    }

    struct Pair {
        client: SslStream<DgramIo>,
        opener: Opener,
        sealer: Sealer,
    }

    /// A finished handshake on `suite`, the server side turned into our layer.
    fn handshake(suite: &str) -> Pair {
        let mut client = stream(&context(suite, false).unwrap(), false);
        let mut server = stream(&context(suite, true).unwrap(), true);
        let mut flight = Vec::new();
        let (mut c_done, mut s_done) = (false, false);
        for _ in 0..20 {
            c_done = c_done || client.do_handshake().is_ok();
            carry(&mut client, &mut server);
            s_done = s_done || server.do_handshake().is_ok();
            let sent = carry(&mut server, &mut client);
            if !sent.is_empty() {
                flight = sent;
            }
            if c_done && s_done {
                break;
            }
        }
        assert!(c_done && s_done, "{suite}: handshake did not finish");
        let ssl = server.ssl();
        assert_eq!(ssl.current_cipher().unwrap().name(), suite);
        let (mut cr, mut sr, mut master) = ([0u8; 32], [0u8; 32], [0u8; 48]);
        ssl.client_random(&mut cr);
        ssl.server_random(&mut sr);
        let n = ssl.session().unwrap().master_key(&mut master);
        let parsed = Suite::from_openssl_name(suite).expect("suite known");
        let (epoch, seq) = last_record(&flight).expect("our Finished");
        assert_eq!(epoch, 1);
        let (opener, sealer) = server_halves(parsed, &master[..n], &cr, &sr, epoch, seq + 1);
        Pair { client, opener, sealer }
    }

    fn client_sends(p: &mut Pair, data: &[u8]) -> Vec<u8> {
        p.client.ssl_write(data).unwrap();
        let mut out: Vec<Vec<u8>> = p.client.get_mut().outbox.drain(..).collect();
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    fn open_all(opener: &mut Opener, dgram: &[u8]) -> Vec<Result<Inbound, RecordError>> {
        records(dgram).map(|r| r.and_then(|r| opener.open(&r))).collect()
    }

    fn client_reads(p: &mut Pair, dgram: Vec<u8>) -> Result<Vec<u8>, ErrorCode> {
        p.client.get_mut().inbox.push_back(dgram);
        let mut buf = [0u8; 2048];
        p.client.ssl_read(&mut buf).map(|n| buf[..n].to_vec()).map_err(|e| e.code())
    }

    #[test]
    fn every_suite_both_ways_with_openssl() {
        for suite in SUITES {
            let mut p = handshake(suite);
            for i in 0..3u8 {
                let msg = vec![i; 100 + usize::from(i)];
                let d = client_sends(&mut p, &msg);
                assert_eq!(open_all(&mut p.opener, &d), vec![Ok(Inbound::Data(msg.clone()))], "{suite}: ours reads OpenSSL's");
                let ours = p.sealer.seal_data(&msg).unwrap();
                assert_eq!(client_reads(&mut p, ours), Ok(msg), "{suite}: OpenSSL reads ours");
            }
        }
    }

    #[test]
    fn close_notify_both_ways() {
        let mut p = handshake("PSK-AES128-CCM8");
        let ours = p.sealer.close_notify().unwrap();
        assert_eq!(client_reads(&mut p, ours), Err(ErrorCode::ZERO_RETURN));
        let mut p = handshake("ECDHE-ECDSA-AES256-GCM-SHA384");
        let _ = p.client.shutdown();
        let d: Vec<Vec<u8>> = p.client.get_mut().outbox.drain(..).collect();
        assert_eq!(open_all(&mut p.opener, &d[0]), vec![Ok(Inbound::Closed { fatal: false, description: CLOSE_NOTIFY })]);
    }

    #[test]
    fn replayed_wrong_epoch_truncated_and_forged_records_are_dropped_not_fatal() {
        let mut p = handshake("PSK-AES128-GCM-SHA256");
        let first = client_sends(&mut p, b"one");
        assert_eq!(open_all(&mut p.opener, &first), vec![Ok(Inbound::Data(b"one".to_vec()))]);
        let seq = records(&first).next().unwrap().unwrap().seq;
        assert_eq!(open_all(&mut p.opener, &first), vec![Err(RecordError::Replayed(seq))]);

        let second = client_sends(&mut p, b"two");
        let mut epoch2 = second.clone();
        epoch2[4] = 2;
        assert_eq!(open_all(&mut p.opener, &epoch2), vec![Err(RecordError::WrongEpoch(2))]);
        assert_eq!(open_all(&mut p.opener, &second[..second.len() - 1]), vec![Err(RecordError::Malformed)]);
        assert_eq!(open_all(&mut p.opener, &second[..5]), vec![Err(RecordError::Malformed)]);
        let mut forged = second.clone();
        *forged.last_mut().unwrap() ^= 1;
        assert_eq!(open_all(&mut p.opener, &forged), vec![Err(RecordError::BadMac)]);
        // A forgery must not have moved the window: the genuine record still opens.
        assert_eq!(open_all(&mut p.opener, &second), vec![Ok(Inbound::Data(b"two".to_vec()))]);
        assert!(open_all(&mut p.opener, b"\x17garbage").iter().all(Result::is_err));
        let third = client_sends(&mut p, b"three");
        assert_eq!(open_all(&mut p.opener, &third), vec![Ok(Inbound::Data(b"three".to_vec()))]);
    }

    #[test]
    fn records_out_of_order_within_the_window_are_accepted_once() {
        let mut p = handshake("PSK-AES128-CCM8");
        let sent: Vec<Vec<u8>> = (0..70u8).map(|i| client_sends(&mut p, &[i])).collect();
        // The newest first, then an older one inside the window, then one out of it.
        assert_eq!(open_all(&mut p.opener, &sent[69]), vec![Ok(Inbound::Data(vec![69]))]);
        assert_eq!(open_all(&mut p.opener, &sent[10]), vec![Ok(Inbound::Data(vec![10]))]);
        assert!(matches!(open_all(&mut p.opener, &sent[10])[0], Err(RecordError::Replayed(_))));
        assert!(matches!(open_all(&mut p.opener, &sent[3])[0], Err(RecordError::Replayed(_))));
    }

    #[test]
    fn several_records_in_one_datagram() {
        let mut p = handshake("PSK-CHACHA20-POLY1305");
        let both = [client_sends(&mut p, b"a"), client_sends(&mut p, b"b")].concat();
        let got = open_all(&mut p.opener, &both);
        assert_eq!(got, vec![Ok(Inbound::Data(b"a".to_vec())), Ok(Inbound::Data(b"b".to_vec()))]);
    }

    #[test]
    fn alerts_and_handshake_messages_are_classified() {
        assert_eq!(meaning(ALERT, vec![2, 40]), Inbound::Closed { fatal: true, description: 40 });
        assert_eq!(meaning(ALERT, vec![1, 0]), Inbound::Closed { fatal: false, description: 0 });
        assert_eq!(meaning(ALERT, vec![1, 90]), Inbound::Ignored);
        assert_eq!(meaning(HANDSHAKE, vec![FINISHED, 0, 0, 12]), Inbound::FinishedAgain);
        assert_eq!(meaning(HANDSHAKE, vec![1, 0, 0, 12]), Inbound::Ignored);
        assert_eq!(meaning(CHANGE_CIPHER_SPEC, vec![1]), Inbound::Ignored);
    }

    #[test]
    fn suites_outside_the_layer_are_unknown() {
        assert_eq!(Suite::from_openssl_name("PSK-AES128-CBC-SHA256"), None);
        assert_eq!(Suite::from_openssl_name("ECDHE-PSK-AES128-CBC-SHA256"), None);
    }
}
