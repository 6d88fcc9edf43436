//! gunicorn's `ciphers` (an OpenSSL cipher list) mapped onto the suites
//! rustls offers.
//!
//! As in OpenSSL, the list chooses the TLS 1.2 suites; TLS 1.3 suites are
//! chosen only by naming them (`TLS_AES_256_GCM_SHA384`), otherwise all are
//! kept. Terms are separated by `:`, `,` or spaces; `!x` and `-x` remove,
//! `+x` reorders (order is rustls's own here), `a+b` is "both a and b", and
//! `@STRENGTH`/`@SECLEVEL=n` are ignored. A family keyword that matches
//! nothing rustls has (`DHE`, `CAMELLIA`, `!RC4`) selects nothing, as it
//! would in OpenSSL against a build without those ciphers. A specific suite
//! rustls does not offer (`AES256-SHA`), an unknown keyword, or a list that
//! leaves nothing is an error: never a silent downgrade.

use rustls::SupportedCipherSuite;

/// What a TLS 1.2 suite is made of, in OpenSSL's vocabulary.
struct Suite12 {
    openssl: &'static str,
    auth: &'static str,
    enc: &'static str,
    mac: &'static str,
}

const SUITES12: &[Suite12] = &[
    Suite12 {
        openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
        auth: "ECDSA",
        enc: "AES256GCM",
        mac: "SHA384",
    },
    Suite12 {
        openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
        auth: "ECDSA",
        enc: "AES128GCM",
        mac: "SHA256",
    },
    Suite12 {
        openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
        auth: "ECDSA",
        enc: "CHACHA20",
        mac: "SHA256",
    },
    Suite12 {
        openssl: "ECDHE-RSA-AES256-GCM-SHA384",
        auth: "RSA",
        enc: "AES256GCM",
        mac: "SHA384",
    },
    Suite12 {
        openssl: "ECDHE-RSA-AES128-GCM-SHA256",
        auth: "RSA",
        enc: "AES128GCM",
        mac: "SHA256",
    },
    Suite12 {
        openssl: "ECDHE-RSA-CHACHA20-POLY1305",
        auth: "RSA",
        enc: "CHACHA20",
        mac: "SHA256",
    },
];

/// Keywords OpenSSL knows for ciphers rustls does not implement at all.
const ABSENT_FAMILIES: &[&str] = &[
    "DHE",
    "EDH",
    "KDHE",
    "KEDH",
    "DH",
    "ADH",
    "AECDH",
    "KRSA",
    "RSA",
    "PSK",
    "KPSK",
    "ECDHEPSK",
    "DHEPSK",
    "RSAPSK",
    "SRP",
    "KSRP",
    "CBC",
    "SHA1",
    "SHA",
    "MD5",
    "RC4",
    "3DES",
    "DES",
    "EXPORT",
    "EXP",
    "LOW",
    "MEDIUM",
    "ANULL",
    "ENULL",
    "NULL",
    "COMPLEMENTOFALL",
    "COMPLEMENTOFDEFAULT",
    "CAMELLIA",
    "CAMELLIA128",
    "CAMELLIA256",
    "SEED",
    "IDEA",
    "RC2",
    "DSS",
    "ADSS",
    "ARIA",
    "ARIA128",
    "ARIA256",
    "AESCCM",
    "AESCCM8",
    "CCM",
    "GOST",
    "KGOST",
    "AGOST",
    "SSLV3",
    "TLSV1",
    "TLSV1.0",
    "TLSV1.1",
    "KECDH",
    "ECDH",
];

fn keyword_matches(word: &str, s: &Suite12) -> Option<bool> {
    let w = word.to_ascii_uppercase();
    Some(match w.as_str() {
        "ALL" | "DEFAULT" | "HIGH" | "TLSV1.2" | "ECDHE" | "EECDH" | "KECDHE" | "KEECDH"
        | "AEAD" | "FIPS" | "SUITEB128" | "SUITEB192" => true,
        "ECDSA" | "AECDSA" => s.auth == "ECDSA",
        "ARSA" => s.auth == "RSA",
        "AESGCM" | "AES" => s.enc.starts_with("AES"),
        "AES128" => s.enc == "AES128GCM",
        "AES256" => s.enc == "AES256GCM",
        "CHACHA20" => s.enc == "CHACHA20",
        "SHA256" => s.mac == "SHA256",
        "SHA384" => s.mac == "SHA384",
        _ if ABSENT_FAMILIES.contains(&w.as_str()) => false,
        _ => return None,
    })
}

/// The suites `list` chooses among `all` (the provider's, TLS 1.3 first).
pub fn select(
    list: &str,
    all: &[SupportedCipherSuite],
) -> Result<Vec<SupportedCipherSuite>, String> {
    let mut choice = Choice::default();
    let mut any_term = false;
    for term in list
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        any_term = true;
        if term.starts_with('@') {
            continue;
        }
        let (op, body) = match term.as_bytes()[0] {
            b'!' | b'-' | b'+' => (term.as_bytes()[0], &term[1..]),
            _ => (b' ', term),
        };
        if body.to_ascii_uppercase().starts_with("TLS_") {
            check_tls13_name(body, all)?;
            if op == b' ' || op == b'+' {
                choice.named13.push(body.to_string());
            }
            continue;
        }
        let matched = if body.contains('-') && !body.contains('+') {
            suite_by_name(body, op)?
        } else {
            suites_by_keywords(body, list)?
        };
        choice.apply(op, matched);
    }
    if !any_term {
        return Err("ciphers is set but empty".into());
    }
    let out = choice.suites(all);
    if choice.chosen.is_empty() && choice.named13.is_empty() {
        return Err(format!(
            "ciphers {list:?} selects no cipher suite ferricorn can offer (TLS 1.2 suites: {})",
            SUITES12
                .iter()
                .map(|s| s.openssl)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(out)
}

/// What the terms so far chose.
#[derive(Default)]
struct Choice {
    /// TLS 1.2 suites, as indices into SUITES12.
    chosen: Vec<usize>,
    /// Removed with `!`: later terms cannot add them back.
    banned: Vec<usize>,
    /// TLS 1.3 suites named; none named means all.
    named13: Vec<String>,
}

impl Choice {
    /// One term's TLS 1.2 suites, under its operator.
    fn apply(&mut self, op: u8, matched: Vec<usize>) {
        match op {
            b'!' | b'-' => {
                self.chosen.retain(|i| !matched.contains(i));
                if op == b'!' {
                    self.banned.extend(matched);
                }
            }
            b'+' => {}
            _ => {
                for i in matched {
                    if !self.chosen.contains(&i) && !self.banned.contains(&i) {
                        self.chosen.push(i);
                    }
                }
            }
        }
    }

    /// The chosen suites among `all`, in rustls's order, TLS 1.3 first.
    fn suites(&self, all: &[SupportedCipherSuite]) -> Vec<SupportedCipherSuite> {
        let mut out: Vec<SupportedCipherSuite> = all
            .iter()
            .filter(|cs| {
                is_tls13(cs) && (self.named13.is_empty() || self.named13.contains(&name_of(cs)))
            })
            .copied()
            .collect();
        out.extend(all.iter().filter(|cs| {
            !is_tls13(cs) && suite12_index(cs).is_some_and(|i| self.chosen.contains(&i))
        }));
        out
    }
}

/// A suite's name as OpenSSL (and so Python's ssl) spells TLS 1.3 ones:
/// rustls calls them TLS13_*, OpenSSL TLS_*.
fn name_of(cs: &SupportedCipherSuite) -> String {
    let n = cs.suite().as_str().unwrap_or("");
    match n.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => n.to_string(),
    }
}

fn is_tls13(cs: &SupportedCipherSuite) -> bool {
    matches!(cs, SupportedCipherSuite::Tls13(_))
}

/// Where a TLS 1.2 suite of rustls's is in SUITES12.
fn suite12_index(cs: &SupportedCipherSuite) -> Option<usize> {
    let openssl = iana_to_openssl(&name_of(cs));
    SUITES12.iter().position(|s| s.openssl == openssl)
}

/// A TLS 1.3 suite may only be named if rustls offers it.
fn check_tls13_name(body: &str, all: &[SupportedCipherSuite]) -> Result<(), String> {
    if all.iter().any(|cs| is_tls13(cs) && name_of(cs) == body) {
        return Ok(());
    }
    Err(format!(
        "ciphers: {body} is not a TLS 1.3 suite ferricorn offers (it has {})",
        all.iter()
            .filter(|c| is_tls13(c))
            .map(name_of)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// A specific TLS 1.2 suite by OpenSSL name. Removing one rustls lacks is
/// harmless; asking for it is an error.
fn suite_by_name(body: &str, op: u8) -> Result<Vec<usize>, String> {
    match SUITES12
        .iter()
        .position(|s| s.openssl.eq_ignore_ascii_case(body))
    {
        Some(i) => Ok(vec![i]),
        None if op == b'!' || op == b'-' => Ok(vec![]),
        None => Err(format!(
            "ciphers: {body} is not a cipher suite ferricorn can offer (rustls has no such suite; it has {})",
            SUITES12.iter().map(|s| s.openssl).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The TLS 1.2 suites matching every keyword of `a+b+...`.
fn suites_by_keywords(body: &str, list: &str) -> Result<Vec<usize>, String> {
    let mut m = Vec::new();
    for (i, s) in SUITES12.iter().enumerate() {
        let mut all_match = true;
        for word in body.split('+') {
            match keyword_matches(word, s) {
                Some(true) => {}
                Some(false) => all_match = false,
                None => {
                    return Err(format!(
                        "ciphers: unknown cipher keyword {word:?} in {list:?}"
                    ))
                }
            }
        }
        if all_match {
            m.push(i);
        }
    }
    Ok(m)
}

/// TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 -> ECDHE-RSA-AES128-GCM-SHA256.
fn iana_to_openssl(iana: &str) -> String {
    let Some(rest) = iana.strip_prefix("TLS_ECDHE_") else {
        return String::new();
    };
    let Some((auth, cipher)) = rest.split_once("_WITH_") else {
        return String::new();
    };
    let cipher = match cipher {
        "AES_128_GCM_SHA256" => "AES128-GCM-SHA256",
        "AES_256_GCM_SHA384" => "AES256-GCM-SHA384",
        "CHACHA20_POLY1305_SHA256" => "CHACHA20-POLY1305",
        _ => return String::new(),
    };
    format!("ECDHE-{auth}-{cipher}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &str) -> Result<Vec<String>, String> {
        let all = rustls::crypto::ring::default_provider().cipher_suites;
        select(list, &all).map(|v| {
            v.iter()
                .map(|c| c.suite().as_str().unwrap_or("").to_string())
                .collect()
        })
    }

    #[test]
    fn every_rustls_tls12_suite_has_an_openssl_name() {
        let all = rustls::crypto::ring::default_provider().cipher_suites;
        for cs in all
            .iter()
            .filter(|c| matches!(c, SupportedCipherSuite::Tls12(_)))
        {
            let n = iana_to_openssl(cs.suite().as_str().unwrap());
            assert!(SUITES12.iter().any(|s| s.openssl == n), "{n}");
        }
    }

    #[test]
    fn mozilla_intermediate_list_keeps_ecdhe_gcm_and_chacha() {
        let n = names("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256").err();
        // DHE-RSA-... is named explicitly and rustls cannot offer it.
        assert!(n.unwrap().contains("DHE-RSA-AES128-GCM-SHA256"));
        let n =
            names("ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!MD5:!DSS").unwrap();
        assert_eq!(n.len(), 9, "{n:?}");
    }

    #[test]
    fn exclusions_and_families() {
        let n = names("HIGH:!CHACHA20:!aECDSA").unwrap();
        let t12: Vec<_> = n.iter().filter(|x| x.contains("WITH")).collect();
        assert_eq!(t12.len(), 2, "{n:?}");
        assert!(t12.iter().all(|x| x.contains("RSA") && x.contains("AES")));
        assert!(names("DHE:CAMELLIA").unwrap_err().contains("selects no"));
        assert!(names("BOGUS")
            .unwrap_err()
            .contains("unknown cipher keyword"));
        assert!(names("AES256-SHA").unwrap_err().contains("AES256-SHA"));
        let n = names("TLS_AES_256_GCM_SHA384:ECDHE-RSA-AES256-GCM-SHA384").unwrap();
        assert_eq!(
            n,
            vec![
                "TLS13_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
            ]
        );
    }
}
