//! Rich menus as LINE's JSON and back, and the limits checked on the way.

use super::*;

fn area(action: Kind) -> pb::RichMenuArea {
    pb::RichMenuArea {
        bounds: Some(pb::RichMenuBounds {
            x: 0,
            y: 0,
            width: 1250,
            height: 843,
        }),
        action: Some(pb::RichMenuAction {
            label: String::new(),
            kind: Some(action),
        }),
    }
}

fn menu(width: i32, height: i32, areas: Vec<pb::RichMenuArea>) -> pb::RichMenu {
    pb::RichMenu {
        size: Some(pb::RichMenuSize { width, height }),
        name: "spring".into(),
        chat_bar_text: "Menu".into(),
        areas,
        ..Default::default()
    }
}

fn violations_of(menu: &pb::RichMenu) -> String {
    let mut violations = Violations::new();
    assert!(typed_menu(&mut violations, "rich_menu", menu).is_none());
    violations.into_result().unwrap_err().message().to_owned()
}

#[test]
fn typed_menus_become_lines_json() {
    let mut violations = Violations::new();
    let (json, size) = typed_menu(
        &mut violations,
        "rich_menu",
        &menu(
            2500,
            843,
            vec![
                area(Kind::Postback(pb::RichMenuPostbackAction {
                    data: "action=buy".into(),
                    display_text: "Buy".into(),
                    input_option: "openKeyboard".into(),
                    fill_in_text: "how many?".into(),
                })),
                area(Kind::Uri(pb::RichMenuUriAction {
                    uri: "https://example.com/".into(),
                    alt_uri_desktop: "https://example.com/pc".into(),
                })),
            ],
        ),
    )
    .expect("a valid menu");
    assert_eq!(
        size,
        Size {
            width: 2500,
            height: 843
        }
    );
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["areas", "chatBarText", "name", "selected", "size"]);
    assert_eq!(
        json["areas"][0]["action"],
        json!({"type": "postback", "data": "action=buy", "displayText": "Buy",
               "inputOption": "openKeyboard", "fillInText": "how many?"})
    );
    assert_eq!(
        json["areas"][1]["action"]["altUri"],
        json!({"desktop": "https://example.com/pc"})
    );
}

#[test]
fn menus_outside_lines_limits_are_refused_naming_the_field() {
    let tall = violations_of(&menu(800, 600, vec![]));
    assert!(tall.contains("rich_menu.size: width / height"), "{tall}");
    let small = violations_of(&menu(700, 200, vec![]));
    assert!(small.contains("rich_menu.size.width"), "{small}");
    assert!(small.contains("rich_menu.size.height"), "{small}");
    let mut outside = area(Kind::Message(pb::RichMenuMessageAction { text: "".into() }));
    outside.bounds = Some(pb::RichMenuBounds {
        x: 2000,
        y: 0,
        width: 600,
        height: 843,
    });
    let refused = violations_of(&menu(2500, 843, vec![outside]));
    assert!(
        refused.contains("rich_menu.areas[0].bounds: must lie inside"),
        "{refused}"
    );
    assert!(
        refused.contains("rich_menu.areas[0].action.message.text"),
        "{refused}"
    );
    let many = violations_of(&menu(
        2500,
        843,
        (0..21)
            .map(|_| {
                area(Kind::Message(pb::RichMenuMessageAction {
                    text: "a".into(),
                }))
            })
            .collect(),
    ));
    assert!(
        many.contains("rich_menu.areas: must be at most 20"),
        "{many}"
    );
    let mut long = menu(2500, 843, vec![]);
    long.chat_bar_text = "fifteen chars!!".into();
    assert!(violations_of(&long).contains("rich_menu.chat_bar_text"));
    let bad_uri = violations_of(&menu(
        2500,
        843,
        vec![area(Kind::Uri(pb::RichMenuUriAction {
            uri: "javascript:alert(1)".into(),
            alt_uri_desktop: String::new(),
        }))],
    ));
    assert!(
        bad_uri.contains("action.uri.uri: must be an http"),
        "{bad_uri}"
    );
    let bad_json = violations_of(&menu(
        2500,
        843,
        vec![area(Kind::Json(r#"{"label":"x"}"#.into()))],
    ));
    assert!(
        bad_json.contains("action.json: must be a JSON object"),
        "{bad_json}"
    );
}

#[test]
fn lines_actions_come_back_typed_or_as_json() {
    let typed = action_to_proto(json!({"type": "message", "label": "Hi", "text": "hello"}));
    assert_eq!(typed.label, "Hi");
    assert!(matches!(typed.kind, Some(Kind::Message(m)) if m.text == "hello"));
    let uri = action_to_proto(json!({"type": "uri", "uri": "https://a.example/",
                                     "altUri": {"desktop": "https://b.example/"}}));
    assert!(matches!(uri.kind, Some(Kind::Uri(u)) if u.alt_uri_desktop == "https://b.example/"));
    for other in [
        json!({"type": "datetimepicker", "data": "d", "mode": "date"}),
        json!({"type": "message", "text": "hi", "extra": true}),
        json!("not an object"),
    ] {
        let kept = action_to_proto(other.clone());
        let Some(Kind::Json(text)) = kept.kind else {
            panic!("{other} kept as JSON");
        };
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), other);
    }
}

#[test]
fn alias_ids_follow_lines_pattern() {
    let mut violations = Violations::new();
    assert!(alias_id(&mut violations, "a", "richmenu-alias_a1").is_some());
    for bad in ["", "UPPER", "a".repeat(33).as_str(), "a b", "a/b"] {
        assert!(alias_id(&mut violations, "a", bad).is_none(), "{bad:?}");
    }
}
