//! Third-party pack trust on a real agent: publisher signatures, tampering,
//! unsigned packs, and the hub's approval as a signature.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use sonde_tests::*;

fn packs_json(agent: &Agent) -> Vec<Value> {
    let out = agent.output(&["packs", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn pack<'a>(packs: &'a [Value], name: &str) -> &'a Value {
    packs
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no pack {name}: {packs:?}"))
}

#[test]
fn a_signed_pack_is_trusted_and_a_tampered_one_refused() {
    let scratch = Scratch::new();
    // First learn the publisher key with a throwaway agent config, then
    // write the real config trusting it.
    let keymaker = Agent::new(&scratch, "keymaker", "");
    let (key_file, public) = keymaker.publisher_key();
    let agent = Agent::new(
        &scratch,
        "trusting",
        &format!("publisher_keys = [\"{public}\"]"),
    );
    agent.add_pack(
        "signed",
        &LOCAL_PACK.replace("name = \"loc\"", "name = \"signed\""),
    );
    let out = keymaker.output(&[
        "packs",
        "sign",
        agent.packs_dir().join("signed").to_str().unwrap(),
        "--key",
        key_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    chown(&agent.packs_dir().join("signed/pack.sig"));
    let packs = packs_json(&agent);
    assert_eq!(
        pack(&packs, "signed")["state"],
        "active",
        "signed by a trusted key, approval auto"
    );
    // Change one probe after signing.
    let manifest = agent.packs_dir().join("signed/pack.toml");
    let tampered = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("exec = [\"false\"]", "exec = [\"cat\", \"/etc/hostname\"]");
    std::fs::write(&manifest, tampered).unwrap();
    let packs = packs_json(&agent);
    let p = pack(&packs, "signed");
    assert_eq!(p["state"], "refused");
    assert!(
        p["missing"][0]
            .as_str()
            .unwrap()
            .contains("modified after it was signed"),
        "{p}"
    );
    let out = agent.output(&["probe", "--local", "signed.echo", "--param", "text=x"]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn unsigned_packs_wait_for_the_hub_unless_allowed() {
    let scratch = Scratch::new();
    let strict = Agent::new(&scratch, "strict", "");
    strict.add_pack("loc", LOCAL_PACK);
    let packs = packs_json(&strict);
    let p = pack(&packs, "loc");
    assert_eq!(p["state"], "pending");
    assert!(
        p["missing"][0].as_str().unwrap().contains("unsigned"),
        "{p}"
    );
    let relaxed = Agent::new(&scratch, "relaxed", "allow_unsigned_packs = true");
    relaxed.add_pack("loc", LOCAL_PACK);
    assert_eq!(pack(&packs_json(&relaxed), "loc")["state"], "active");
}

#[test]
fn a_broken_pack_is_reported_and_never_hides_the_others() {
    let scratch = Scratch::new();
    let agent = Agent::new(&scratch, "broken", "allow_unsigned_packs = true");
    agent.add_pack("loc", LOCAL_PACK);
    agent.add_pack("bad", "name = \"bad\"\nversion = \"1\"\ndescription = \"x\"\n[[probes]]\nname = \"sh\"\ndescription = \"x\"\nexec = [\"sh\", \"-c\", \"id\"]\n");
    let packs = packs_json(&agent);
    assert_eq!(pack(&packs, "loc")["state"], "active");
    let bad = pack(&packs, "bad");
    assert_eq!(bad["state"], "refused");
    assert!(
        bad["missing"][0].as_str().unwrap().contains("shell"),
        "{bad}"
    );
}
