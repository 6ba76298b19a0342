//! AES-SIV (RFC 5297) with AES-256 (64-byte key: S2V/CMAC key ‖ CTR key), composed from the
//! audited RustCrypto primitives: CMAC from `cmac::Cmac` and the keystream from
//! `ctr::Ctr128BE`, both over `aes` key schedules built once per data key. Only the S2V
//! composition (RFC 5297 §2.4, one header) is ours. `aes_siv::Siv` needs `&mut self`, is not
//! `Clone`, and re-expands both AES keys for every value; here a shared `&self` encrypts with
//! no key setup (a clone of the keyed CMAC and of the CTR key schedule). The tests check it
//! against RFC 5297 A.1 and against `aes_siv::siv::Aes256Siv` for many lengths.

use aes_gcm::aes::Aes256Enc;
use aes_gcm::aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use cmac::{Cmac, Mac};
use subtle::ConstantTimeEq;

type Block = [u8; 16];
type Ctr = ctr::Ctr128BE<Aes256Enc>;

/// AES-256-SIV with ready key schedules (one header: the associated data).
pub struct Siv256 {
    /// CMAC keyed with the first half of the key (cloned per value).
    mac: Cmac<Aes256Enc>,
    /// `CMAC(0^128)`, the start of every S2V.
    zero: Block,
    /// The CTR key schedule (second half of the key).
    ctr: Aes256Enc,
}

/// Doubling in GF(2^128) (RFC 5297 §2.3), without a branch on the secret top bit.
fn dbl(b: &Block) -> Block {
    let v = u128::from_be_bytes(*b);
    let carry = (v >> 127).wrapping_neg() & 0x87;
    ((v << 1) ^ carry).to_be_bytes()
}

fn xor(a: &mut Block, b: &Block) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

impl Siv256 {
    /// From the 64-byte SIV key: first half authenticates (S2V), second half encrypts (CTR).
    pub fn new(key: &[u8; 64]) -> Self {
        let (mac_key, ctr_key) = key.split_at(32);
        let mac = <Cmac<Aes256Enc> as KeyInit>::new_from_slice(mac_key)
            .expect("AES-256 takes the 32-byte half");
        let ctr = Aes256Enc::new_from_slice(ctr_key).expect("AES-256 takes the 32-byte half");
        let mut m = mac.clone();
        m.update(&[0u8; 16]);
        let zero = m.finalize().into_bytes().into();
        Siv256 { mac, zero, ctr }
    }

    fn cmac(&self, parts: &[&[u8]]) -> Block {
        let mut m = self.mac.clone();
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// S2V over one header and the message.
    fn s2v(&self, header: &[u8], msg: &[u8]) -> Block {
        let mut d = dbl(&self.zero);
        xor(&mut d, &self.cmac(&[header]));
        if msg.len() >= 16 {
            let (head, end) = msg.split_at(msg.len() - 16);
            let mut t: Block = end.try_into().unwrap_or([0; 16]);
            xor(&mut t, &d);
            self.cmac(&[head, &t])
        } else {
            let mut t = dbl(&d);
            let mut pad = [0u8; 16];
            pad[..msg.len()].copy_from_slice(msg);
            pad[msg.len()] = 0x80;
            xor(&mut t, &pad);
            self.cmac(&[&t])
        }
    }

    /// XORs the CTR keystream for synthetic IV `v` into `buf` (RFC 5297 §2.5: two bits of
    /// the counter cleared).
    fn ctr(&self, v: &Block, buf: &mut [u8]) {
        let mut q = *v;
        q[8] &= 0x7f;
        q[12] &= 0x7f;
        let core = ctr::CtrCore::inner_iv_init(self.ctr.clone(), &q.into());
        let mut c = Ctr::from_core(core);
        c.apply_keystream(buf);
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

    /// Wycheproof `aes_siv_cmac_test.json`, 512-bit keys (AES-256-SIV): (tcId, key, aad, msg,
    /// ct = SIV ‖ ciphertext, valid).
    const WYCHEPROOF: &[(u32, &str, &str, &str, &str, bool)] = &[
        (
            305,
            "e2c5662bb18fbb411d0304e4241db073fe60a4704fee290073513038a22b4cd542580b2b4edbc37e3de01c0cb61abcad46986cdc491ce9e5ae5af223ff58b953",
            "fab912dec29a34aabfaef176",
            "0d",
            "1c6969ecb15741a9959b7a8492250e391a",
            true,
        ),
        (
            308,
            "6d43cfc930a1e0051f607d0c4a76ad5bec77d9f98bbd9ae5e56a1d65fcf1bf68c7780f727bfe690497bae478afbc4ebf7a89943ee146f72d352940794ff202f4",
            "c2b75c998f4cac28b4b69dfb",
            "1d25f833",
            "0d1e1981da44a7d9eda60e48e7ae4f8505d8ba98",
            true,
        ),
        (
            316,
            "9593f0d6679e8e18b43cb4d26a7ea9da9d6037fd5a82db0b091a682b6547a77298e4fd1d1481f3603d0b1e7e6dcf27200105af0f844f2aaacd98540ab2b6c8a8",
            "7b3f9591076e32a21766e2bb",
            "0628d19cc94c4b4f3d703e1f",
            "56e6fd5a7f449a8e6bafa38f945c70cf8a534179b3b1f26266fb6b56",
            true,
        ),
        (
            320,
            "139383f3f82dc78e0b380027f9e5fcd2ed23716404be5c554452e4dc73d237026594491820c6b8297185cc1fa84f49a5c7d7cd05c5de090ff1c3397bc2740437",
            "d39da73ffc03ad0a9213ffc7",
            "48604944a80fadf50d55b87727934458c8",
            "a9cf73951cb39823777f35c96c845169476e2ec2317cb6b8dd8b6172fdceabff9d",
            true,
        ),
        (
            322,
            "c0f4bede68c6ed5ad14918e2ddeced692dfd5419c04204d5b96f4ca47078b07028c6fb87b1b490d875f070bbe4d790f65e5df19947f02c9d3a4e493b542d0291",
            "b411e4d2facca67ea4a9f2a1",
            "2f358d4534559ac99dd71798b7925705d6f013f6b848ffe01cc86cef09d88f",
            "d27ae26dfe02e3eedf544e1b452cb0f0c9303a4e4819318315ae08839bcce558e4741817ec08dae406bbfc09f59aa9",
            true,
        ),
        (
            324,
            "72a76714e0171e8213de624f00e273bc900050e69d25c454cc42b61e8b3fbc92d4942e1ae14421e164046c1479a7b9c9f4b50b382cb62dfeaa210b98dec7d937",
            "6a8aaf2c84003e0e6f409658",
            "92d8f4dc7d41e8b180d66e8994022db79249cdc76fd7f3ea12d9925b51925250cd75a15fcfd78ea85c57fe6196f8d7545086f99ea796a0ea69170db9944200435d9d3d551943892400ce787f703c1105",
            "69f720f36b0da86ec8cc0f46d62835dcb35ac23f5b891152d861c4e0f0018f19d272ee8b12d83300bfd46aeec0124d5d23b3cb849c1cab1fdf64b70947ebf79f5442e209076dfa9a3f36ab0a6d3cf4a75ddfcdc21837743b20885db4c803ac27",
            true,
        ),
        (
            325,
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
            "",
            "8dbfee9580e7e2bc66100a674497f4e1",
            "000000000000000000000000000000007ef8aa7e4dd49d9cfa09e9cb574fd90d",
            true,
        ),
        (
            328,
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
            "000102030405060708090a0b0c0d0e0f",
            "404aa73280eb830afde284ba6b18d48a",
            "ffffffffffffffffffffffffffffffff0fae016c086fc20546b374c24f3ebad0",
            true,
        ),
        (
            329,
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
            "",
            "ff4d7cdeb8f3c4e37a05a91ee26e2a84",
            "ffffffffffffffffffffffff7fffffffb0a9da80307785ecc1545966c64844de",
            true,
        ),
        (
            333,
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
            "",
            "114cc36e58faceb2e6a2344a679ea4c3",
            "fffffffffffffffffffffffffffffffe2f849650d6e89e2668e990219195719c",
            true,
        ),
        (
            335,
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
            "",
            "",
            "6ef5b8ef53fc365606cd3ea047374885",
            false,
        ),
        (
            336,
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
            "",
            "3031323334353637",
            "202e4a8f8b4c66788f3af230fb1c3ada5ead70c7f066d4df",
            false,
        ),
    ];

    #[test]
    fn wycheproof_aes_siv_cmac_512() {
        for &(id, key, aad, msg, ct, valid) in WYCHEPROOF {
            let key: [u8; 64] = unhex(key).try_into().unwrap();
            let (aad, msg, ct) = (unhex(aad), unhex(msg), unhex(ct));
            let siv = Siv256::new(&key);
            let v: Block = ct[..16].try_into().unwrap();
            let mut buf = ct[16..].to_vec();
            let opened = siv.decrypt(&aad, &mut buf, &v);
            assert_eq!(opened.is_ok(), valid, "tcId {id}");
            if valid {
                assert_eq!(buf, msg, "tcId {id}");
                let mut enc = msg.clone();
                let tag = siv.encrypt(&aad, &mut enc);
                assert_eq!([&tag[..], &enc].concat(), ct, "tcId {id}");
            } else {
                assert_eq!(
                    buf,
                    ct[16..],
                    "tcId {id}: a failed open leaves no plaintext"
                );
            }
        }
    }

    #[test]
    fn doubling_is_rfc_5297s() {
        let mut top = [0u8; 16];
        top[0] = 0x80;
        let mut want = [0u8; 16];
        want[15] = 0x87;
        assert_eq!(dbl(&top), want);
        let mut one = [0u8; 16];
        one[15] = 1;
        let mut two = [0u8; 16];
        two[15] = 2;
        assert_eq!(dbl(&one), two);
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
