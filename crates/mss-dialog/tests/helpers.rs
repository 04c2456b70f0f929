//! What a B2BUA asks before a request reaches a dialog: is it in one, the `481` for an
//! unknown one, the `Require` check; and the bound of the table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod peer;

use mss_dialog::{
    check_require, is_in_dialog, unknown_dialog_answer, DialogConfig, DialogError, DialogId,
    Dialogs, Rejection, RequestOutcome,
};
use mss_sip::{HeaderName, StatusCode};
use peer::{a_leg, from_alice, local_a, request, rng, table, INVITE_A};

#[test]
fn in_dialog_means_a_to_tag() {
    let invite = request(INVITE_A);
    assert!(!is_in_dialog(&invite));
    let id = DialogId::new("a-leg-1@192.0.2.10", "ours", "alice-1");
    assert!(is_in_dialog(&from_alice("INFO", 11, &id, "")));
    let broken = request(&INVITE_A.replace("To: <sip:101@pbx.example.com>", "To: <sip:101@pbx"));
    assert!(!is_in_dialog(&broken));
}

#[test]
fn unknown_dialog_gets_481_an_ack_nothing() {
    let mut rng = rng(31);
    let mut dialogs = table(&mut rng);
    let (_, known) = a_leg(&mut dialogs, &mut rng);
    let unknown = DialogId::new("a-leg-1@192.0.2.10", "not-ours", "alice-1");
    let info = from_alice("INFO", 11, &unknown, "");
    let outcome = dialogs.handle_request(&info, &mut rng);
    assert_eq!(outcome, RequestOutcome::Reject(Rejection::UnknownDialog));
    assert_eq!(unknown_dialog_answer(&info), Some(Rejection::UnknownDialog));
    let rsp = Rejection::UnknownDialog.response(&info, "unused");
    assert_eq!(rsp.status(), StatusCode::CALL_TRANSACTION_DOES_NOT_EXIST);
    assert_eq!(rsp.reason(), b"Call/Transaction Does Not Exist");
    assert_eq!(
        rsp.headers().to().unwrap().tag(),
        Some("not-ours"),
        "the To tag is kept"
    );

    let ack = from_alice("ACK", 11, &unknown, "");
    assert_eq!(
        dialogs.handle_request(&ack, &mut rng),
        RequestOutcome::StrayAck
    );
    assert_eq!(unknown_dialog_answer(&ack), None);
    // A request without To tag is not for the dialog layer.
    assert_eq!(
        dialogs.handle_request(&request(INVITE_A), &mut rng),
        RequestOutcome::OutOfDialog
    );
    // The known dialog is found by Call-ID, To tag and From tag.
    let found = dialogs
        .find_for_request(&from_alice("INFO", 11, &known, ""))
        .unwrap();
    assert_eq!(found.id(), &known);
}

#[test]
fn require_foo_gets_420_with_unsupported_foo() {
    let invite =
        request(&INVITE_A.replace("Max-Forwards: 68\n", "Max-Forwards: 68\nRequire: foo\n"));
    let Err(rejection) = check_require(&invite, &[]) else {
        panic!()
    };
    assert_eq!(rejection, Rejection::BadExtension(vec!["foo".into()]));
    let rsp = rejection.response(&invite, "t1");
    assert_eq!(rsp.status(), StatusCode::BAD_EXTENSION);
    assert_eq!(rsp.reason(), b"Bad Extension");
    assert_eq!(
        rsp.headers().get_str(&HeaderName::Unsupported).unwrap(),
        Some("foo")
    );
    assert_eq!(
        rsp.headers().to().unwrap().tag(),
        Some("t1"),
        "a final response gets a To tag"
    );

    // Supported tags pass (any case); only the others are listed, in order.
    let several = request(&INVITE_A.replace(
        "Max-Forwards: 68\n",
        "Max-Forwards: 68\nRequire: 100REL, foo\nRequire: bar\n",
    ));
    assert_eq!(
        check_require(&several, &["100rel", "timer"]),
        Err(Rejection::BadExtension(vec!["foo".into(), "bar".into()]))
    );
    assert_eq!(check_require(&request(INVITE_A), &[]), Ok(()));
    let malformed =
        request(&INVITE_A.replace("Max-Forwards: 68\n", "Max-Forwards: 68\nRequire: a b\n"));
    let Err(Rejection::Malformed(e)) = check_require(&malformed, &[]) else {
        panic!()
    };
    assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
}

#[test]
fn the_table_refuses_dialogs_beyond_its_maximum() {
    let mut rng = rng(32);
    let config = DialogConfig {
        max_dialogs: 2,
        ..DialogConfig::default()
    };
    let mut dialogs = Dialogs::new(config, &mut rng);
    let invite = request(INVITE_A);
    let first = dialogs.create_uas(&invite, local_a(), &mut rng).unwrap();
    let second = dialogs.create_uas(&invite, local_a(), &mut rng).unwrap();
    assert_ne!(
        first.local_tag(),
        second.local_tag(),
        "tags from the generator"
    );
    assert_eq!(
        dialogs
            .create_uas(&invite, local_a(), &mut rng)
            .unwrap_err(),
        DialogError::TableFull { max: 2 }
    );
    assert_eq!(dialogs.len(), 2);
    dialogs.remove(&first).unwrap();
    assert!(dialogs.get(&first).is_none());
    assert!(dialogs.create_uas(&invite, local_a(), &mut rng).is_ok());
}

#[test]
fn tags_replay_with_the_seed() {
    let tag = |seed| {
        let mut rng = rng(seed);
        let mut dialogs = table(&mut rng);
        a_leg(&mut dialogs, &mut rng).1.local_tag().to_owned()
    };
    assert_eq!(tag(5), tag(5));
    assert_ne!(tag(5), tag(6));
}

#[test]
fn an_invite_that_is_not_for_a_new_dialog_is_refused() {
    let mut rng = rng(33);
    let mut dialogs = table(&mut rng);
    let id = DialogId::new("a-leg-1@192.0.2.10", "x", "alice-1");
    let reinvite = from_alice("INVITE", 11, &id, "Contact: <sip:a@b>\n");
    assert_eq!(
        dialogs
            .create_uas(&reinvite, local_a(), &mut rng)
            .unwrap_err(),
        DialogError::AlreadyInDialog
    );
    let no_contact = request(&INVITE_A.replace("Contact: <sip:100@192.0.2.10:5062>\n", ""));
    assert_eq!(
        dialogs
            .create_uas(&no_contact, local_a(), &mut rng)
            .unwrap_err(),
        DialogError::Missing(HeaderName::Contact)
    );
    let options = request(&INVITE_A.replace("INVITE", "OPTIONS"));
    assert!(matches!(
        dialogs
            .create_uas(&options, local_a(), &mut rng)
            .unwrap_err(),
        DialogError::NotDialogCreating(_)
    ));
    assert!(dialogs.is_empty());
}
