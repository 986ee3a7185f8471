use super::*;

fn base() -> url::Url {
    url::Url::parse("https://line.example.com/").unwrap()
}

fn declared(size: Option<u64>) -> Declared {
    Declared {
        channel_id: "ch_x".into(),
        content_type: "application/pdf".into(),
        file_name: "a.pdf".into(),
        size,
    }
}

async fn pdf(uploads: &Uploads, now_ms: i64) -> Arc<Upload> {
    let mut incoming = uploads.begin(declared(None)).await.unwrap();
    incoming.write(b"%PDF-1.4\n% test\n").await.unwrap();
    incoming.finish(now_ms).await.unwrap()
}

#[test]
fn ids_and_tokens_have_one_shape() {
    let token = new_token().unwrap();
    assert!(valid_token(&token), "{token}");
    assert_ne!(token, new_token().unwrap());
    for bad in [
        "",
        "../../etc/passwd",
        &"a".repeat(31),
        &format!("{}/", &token[..31]),
    ] {
        assert!(!valid_token(bad), "{bad}");
    }
    assert!(valid_media_id("med_01jq5v6xk9y3r2m8n4p7t0w1za"));
    for bad in ["med_", "med_../x", "ch_01jq5v6xk9y3r2m8n4p7t0w1za"] {
        assert!(!valid_media_id(bad), "{bad}");
    }
}

#[tokio::test]
async fn an_upload_is_kept_reloaded_and_pruned_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let open = |max| {
        Uploads::open(
            dir.path().into(),
            Some(&base()),
            Duration::from_secs(100),
            max,
        )
        .unwrap()
    };
    let uploads = open(u64::MAX);
    let first = pdf(&uploads, 1_000).await;
    let second = pdf(&uploads, 2_000).await;
    assert_eq!(first.content_type, "application/pdf");
    assert_eq!(first.kind, Kind::File);
    let token = &first.variants[0].token;
    let served = uploads.served(token, 1_500).await.unwrap().unwrap();
    let Stored::File(path) = &served.stored else {
        panic!("without NATS an upload is a file: {:?}", served.stored);
    };
    assert_eq!(std::fs::read(path).unwrap(), b"%PDF-1.4\n% test\n");
    assert!(
        uploads
            .url(token)
            .starts_with("https://line.example.com/media/")
    );
    assert!(uploads.get("ch_other", &first.media_id, 1_500).is_err());

    // A restart finds both; a bound of one upload's bytes keeps the newest.
    drop(uploads);
    let uploads = open(first.size);
    assert!(uploads.get("ch_x", &first.media_id, 1_500).is_ok());
    assert_eq!(uploads.prune(2_500).await, 1);
    assert!(uploads.served(token, 2_500).await.unwrap().is_none());
    assert!(!dir.path().join(&first.media_id).exists());
    assert!(uploads.get("ch_x", &second.media_id, 2_500).is_ok());

    // Expiry: created at 2 s, kept 100 s.
    assert!(
        uploads
            .served(&second.variants[0].token, 102_000)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(uploads.prune(102_000).await, 1);
    assert_eq!(uploads.total_bytes(), 0);
}

#[tokio::test]
async fn refused_uploads_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = Uploads::open(
        dir.path().into(),
        Some(&base()),
        Duration::from_secs(100),
        u64::MAX,
    )
    .unwrap();
    let mut incoming = uploads.begin(declared(Some(10))).await.unwrap();
    incoming.write(b"%PDF-1").await.unwrap();
    let err = incoming.finish(0).await.unwrap_err();
    assert!(
        matches!(
            err,
            UploadError::Invalid {
                field: "start.size_bytes",
                ..
            }
        ),
        "{err}"
    );
    let empty = uploads.begin(declared(None)).await.unwrap();
    assert!(matches!(
        empty.finish(0).await,
        Err(UploadError::Invalid { field: "chunk", .. })
    ));
    let entries: Vec<_> = std::fs::read_dir(dir.path().join(TMP_DIR))
        .unwrap()
        .collect();
    assert!(entries.is_empty(), "{entries:?}");
    assert_eq!(uploads.total_bytes(), 0);

    let without_base = Uploads::open(dir.path().into(), None, Duration::from_secs(1), 1).unwrap();
    assert!(matches!(
        without_base.begin(declared(None)).await,
        Err(UploadError::NoPublicBaseUrl)
    ));
}
