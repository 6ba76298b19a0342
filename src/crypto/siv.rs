//! AES-SIV (RFC 5297) with AES-256 (64-byte key: S2V/CMAC key ‖ CTR key) over prebuilt key
//! schedules. `aes_siv::Siv` needs `&mut self`, is not `Clone`, and re-expands both AES keys
//! for every value (~40% of a 16-byte field's cost); this keeps both schedules and the CMAC
//! subkeys ready, so a shared `&self` encrypts with no setup. The tests check it against
//! RFC 5297 and against `aes_siv::siv::Aes256Siv` for many lengths.

use aes_gcm::aes::Aes256Enc;
use aes_gcm::aes::cipher::generic_array::GenericArray;
use aes_gcm::aes::cipher::{BlockEncrypt, KeyInit};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

type Block = [u8; 16];

/// AES-256-SIV with ready key schedules (one header: the associated data).
pub struct Siv256 {
    mac: Aes256Enc,
    k1: Block,
    k2: Block,
    ctr: Aes256Enc,
}

impl Drop for Siv256 {
    fn drop(&mut self) {
        self.k1.zeroize();
        self.k2.zeroize();
    }
}

fn dbl(b: &Block) -> Block {
    let v = u128::from_be_bytes(*b);
    let r = (v << 1) ^ if v >> 127 == 1 { 0x87 } else { 0 };
    r.to_be_bytes()
}

fn xor(a: &mut Block, b: &Block) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

impl Siv256 {
    /// From the 64-byte SIV key: first half authenticates (S2V), second half encrypts (CTR).
    pub fn new(key: &[u8; 64]) -> Self {
        let mac = Aes256Enc::new(GenericArray::from_slice(&key[..32]));
        let ctr = Aes256Enc::new(GenericArray::from_slice(&key[32..]));
        let mut l = GenericArray::default();
        mac.encrypt_block(&mut l);
        let k1 = dbl(&l.into());
        let k2 = dbl(&k1);
        Siv256 { mac, k1, k2, ctr }
    }

    fn enc(&self, b: &mut Block) {
        self.mac.encrypt_block(GenericArray::from_mut_slice(b));
    }

    /// CMAC of `prefix ‖ tail` (RFC 4493), `tail` at most one block.
    fn cmac(&self, prefix: &[u8], tail: &[u8]) -> Block {
        let total = prefix.len() + tail.len();
        // Every block except the last goes through plain CBC.
        let cbc_blocks = total.saturating_sub(1) / 16;
        let fast = cbc_blocks.min(prefix.len() / 16);
        let mut x = [0u8; 16];
        for c in prefix[..fast * 16].chunks_exact(16) {
            xor(&mut x, c.try_into().unwrap_or(&[0; 16]));
            self.enc(&mut x);
        }
        let mut rest = prefix[fast * 16..].iter().chain(tail).copied();
        for _ in fast..cbc_blocks {
            let mut b = [0u8; 16];
            for (dst, src) in b.iter_mut().zip(&mut rest) {
                *dst = src;
            }
            xor(&mut x, &b);
            self.enc(&mut x);
        }
        let mut last = [0u8; 16];
        let mut n = 0;
        for (dst, src) in last.iter_mut().zip(rest) {
            *dst = src;
            n += 1;
        }
        if n == 16 {
            xor(&mut last, &self.k1);
        } else {
            last[n] = 0x80;
            xor(&mut last, &self.k2);
        }
        xor(&mut x, &last);
        self.enc(&mut x);
        x
    }

    /// S2V over one header and the message.
    fn s2v(&self, header: &[u8], msg: &[u8]) -> Block {
        let mut d = self.cmac(&[], &[0u8; 16]);
        d = dbl(&d);
        xor(&mut d, &self.cmac(header, &[]));
        if msg.len() >= 16 {
            let (head, end) = msg.split_at(msg.len() - 16);
            let mut t: Block = end.try_into().unwrap_or([0; 16]);
            xor(&mut t, &d);
            self.cmac(head, &t)
        } else {
            let mut t = dbl(&d);
            let mut pad = [0u8; 16];
            pad[..msg.len()].copy_from_slice(msg);
            pad[msg.len()] = 0x80;
            xor(&mut t, &pad);
            self.cmac(&[], &t)
        }
    }

    /// XORs the CTR keystream for synthetic IV `v` into `buf`.
    fn ctr(&self, v: &Block, buf: &mut [u8]) {
        let mut q = *v;
        q[8] &= 0x7f;
        q[12] &= 0x7f;
        let mut counter = u128::from_be_bytes(q);
        for chunk in buf.chunks_mut(16 * 8) {
            let mut ks = [GenericArray::default(); 8];
            let n = chunk.len().div_ceil(16);
            for b in ks.iter_mut().take(n) {
                *b = counter.to_be_bytes().into();
                counter = counter.wrapping_add(1);
            }
            self.ctr.encrypt_blocks(&mut ks[..n]);
            for (part, k) in chunk.chunks_mut(16).zip(&ks) {
                for (byte, kb) in part.iter_mut().zip(k) {
                    *byte ^= kb;
                }
            }
        }
    }

    /// Encrypts `buf` in place; returns the synthetic IV (which is also the tag).
    pub fn encrypt(&self, header: &[u8], buf: &mut [u8]) -> Block {
        let v = self.s2v(header, buf);
        self.ctr(&v, buf);
        v
    }

    /// Decrypts `buf` in place and authenticates it. On failure `buf` holds garbage the
    /// caller must discard (it is re-encrypted so no plaintext is left behind).
    pub fn decrypt(&self, header: &[u8], buf: &mut [u8], v: &Block) -> Result<(), ()> {
        self.ctr(v, buf);
        let t = self.s2v(header, buf);
        if bool::from(t.ct_eq(v)) {
            Ok(())
        } else {
            self.ctr(v, buf);
            Err(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_siv::siv::Aes256Siv;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn known_vector() {
        let key: [u8; 64] = unhex(
            "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f06f6e6d6c6b6a69686766656463626160\
             f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f",
        )
        .try_into()
        .unwrap();
        let ad = unhex("101112131415161718191a1b1c1d1e1f2021222324252627");
        let mut buf = unhex("112233445566778899aabbccddee");
        let v = Siv256::new(&key).encrypt(&ad, &mut buf);
        let out = [&v[..], &buf].concat();
        assert_eq!(
            out,
            unhex("f125274c598065cfc26b0e71575029088b035217e380cac8919ee800c126")
        );
    }

    #[test]
    fn matches_aes_siv_crate_for_many_lengths() {
        let mut key = [0u8; 64];
        for (i, k) in key.iter_mut().enumerate() {
            *k = (i * 7 + 3) as u8;
        }
        let ours = Siv256::new(&key);
        let mut reference = Aes256Siv::new((&key).into());
        for hlen in [0usize, 6, 16, 17, 40] {
            let header: Vec<u8> = (0..hlen).map(|i| i as u8 ^ 0x5a).collect();
            for len in (0..70).chain([127, 128, 129, 255, 256, 1000, 4096]) {
                let pt: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
                let mut buf = pt.clone();
                let v = ours.encrypt(&header, &mut buf);
                let expect = reference.encrypt([&header], &pt).unwrap();
                assert_eq!([&v[..], &buf].concat(), expect, "hlen {hlen} len {len}");
                assert!(ours.decrypt(&header, &mut buf, &v).is_ok());
                assert_eq!(buf, pt);
                let mut bad = v;
                bad[0] ^= 1;
                let mut buf2 = expect[16..].to_vec();
                assert!(ours.decrypt(&header, &mut buf2, &bad).is_err());
            }
        }
    }
}
