//! Unit tests of the subscriber CSV reader and the export writer.

use super::*;

fn set(s: &str) -> CategorySet {
    CategorySet::parse_list(s).unwrap()
}

fn read_all(input: &[u8], list: Option<CategorySet>) -> (Vec<SubscriberRow>, Vec<RowError>) {
    let reader = CsvReader::new(input, list).unwrap().with_list_name("daily");
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for r in reader {
        match r {
            Ok(row) => good.push(row),
            Err(e) => bad.push(e),
        }
    }
    (good, bad)
}

#[test]
fn reads_plain_rows() {
    let input = b"email,name,categories\n\
        ayesha.khan@example.pk,Ayesha Khan,Politics;Business\n\
        bilal@example.com,,\n";
    let (good, bad) = read_all(input, None);
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(good.len(), 2);
    assert_eq!(good[0].line, 2);
    assert_eq!(good[0].email.as_str(), "ayesha.khan@example.pk");
    assert_eq!(good[0].name.as_deref(), Some("Ayesha Khan"));
    assert_eq!(good[0].categories, Some(set("Business;Politics")));
    assert_eq!(good[1].line, 3);
    assert_eq!(good[1].name, None);
    assert_eq!(good[1].categories, None);
}

#[test]
fn each_defect_is_reported_with_its_line_and_good_rows_still_come_through() {
    let long_name = "N".repeat(201);
    let long_email = format!("{}@example.pk", "a".repeat(250));
    let long_categories = "Politics;".repeat(120);
    let mut input = Vec::new();
    input.extend_from_slice(b"email,name,categories\n"); // 1
    input.extend_from_slice(b"good.one@example.pk,Good One,Politics\n"); // 2
    input.extend_from_slice(b"not-an-address,Bad Address,\n"); // 3
    input.extend_from_slice(b"cricket.fan@example.pk,Fan,Cricket\n"); // 4
    input.extend_from_slice(b"GOOD.ONE@Example.PK,Again,\n"); // 5
    input.extend_from_slice(b"latin1@example.pk,Caf\xE9,\n"); // 6
    input.extend_from_slice(format!("{long_email},Long,\n").as_bytes()); // 7
    input.extend_from_slice(format!("long.name@example.pk,{long_name},\n").as_bytes()); // 8
    input.extend_from_slice(format!("long.cats@example.pk,,{long_categories}\n").as_bytes()); // 9
    input.extend_from_slice(b",No Address,Business\n"); // 10
    input.extend_from_slice(b"extra@example.pk,Extra,Sport,surplus\n"); // 11
    input.extend_from_slice(b"good.two@example.com,Good Two,business\n"); // 12
    let list = set("Business;Politics");
    let (good, bad) = read_all(&input, Some(list));

    let lines: Vec<u64> = good.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 12]);
    // The list's spelling wins over the file's.
    assert_eq!(good[1].categories.as_ref().unwrap().to_stored(), "Business");

    let got: Vec<(u64, &str)> = bad.iter().map(|e| (e.line, e.reason.as_str())).collect();
    let expect_prefix: [(u64, &str); 9] = [
        (3, "invalid email address \"not-an-address\""),
        (
            4,
            "category \"Cricket\" is not carried by list daily (it carries: Business, Politics)",
        ),
        (5, "duplicate of line 2"),
        (
            6,
            "column \"name\" is not valid UTF-8 (byte 0xE9 at position 4)",
        ),
        (7, "email address is 261 bytes long"),
        (8, "name is 201 characters long"),
        (9, "categories cell is 1080 characters long"),
        (10, "missing email address"),
        (11, "expected 3 fields as in the header, found 4"),
    ];
    assert_eq!(got.len(), expect_prefix.len(), "{got:#?}");
    for ((line, reason), (want_line, want)) in got.iter().zip(expect_prefix) {
        assert_eq!(*line, want_line);
        assert!(
            reason.starts_with(want),
            "line {line}: {reason:?} should start with {want:?}"
        );
    }
    assert_eq!(
        bad[0].located("subs.csv"),
        format!("subs.csv:3: {}", bad[0].reason)
    );
}

#[test]
fn bom_crlf_and_quoted_fields_keep_line_numbers() {
    let input = "\u{feff}Email , NAME,Categories\r\n\
        \"zainab@example.pk\",\"Zainab, Dr.\",\"Politics;Sport\"\r\n\
        hamza@example.com,\"Hamza\r\nQureshi\",\"General News\"\r\n\
        \"usman@example.pk\",\"Usman \"\"Babu\"\" Tariq\",\r\n\
        bad@@example.pk,Bad,\r\n";
    let (good, bad) = read_all(input.as_bytes(), None);
    assert_eq!(good.len(), 3, "{bad:?}");
    assert_eq!(good[0].name.as_deref(), Some("Zainab, Dr."));
    assert_eq!(good[1].line, 3);
    assert_eq!(good[1].name.as_deref(), Some("Hamza Qureshi"));
    // The quoted line break in Hamza's name makes Usman's row start on line 5.
    assert_eq!(good[2].line, 5);
    assert_eq!(good[2].name.as_deref(), Some("Usman \"Babu\" Tariq"));
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].line, 6);
}

#[test]
fn blank_rows_are_skipped() {
    let input = b"email,name\r\n\r\n,\r\n , \r\nx@example.pk,X\r\n,,\r\n";
    let (good, bad) = read_all(input, None);
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(good[0].line, 5);
}

#[test]
fn short_rows_are_tolerated() {
    let (good, bad) = read_all(b"email,name,categories\nsana@example.pk\n", None);
    assert!(bad.is_empty());
    assert_eq!(good[0].name, None);
    assert_eq!(good[0].categories, None);
}

#[test]
fn unknown_columns_give_one_warning_and_export_columns_none() {
    let input = b"phone,email,City,status,list,\n0300,a@example.pk,Lahore,active,daily,\n";
    let reader = CsvReader::new(&input[..], None).unwrap();
    assert_eq!(
        reader.warnings(),
        [
            "ignoring unknown columns \"phone\", \"City\", column 6 (no name) (known columns: email, name, categories)"
        ]
    );
    let rows: Vec<_> = reader.collect();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].is_ok());

    let reader = CsvReader::new(&b"email,name,status,list\n"[..], None).unwrap();
    assert!(reader.warnings().is_empty());
}

#[test]
fn fatal_header_problems() {
    assert!(matches!(
        CsvReader::new(&b""[..], None),
        Err(ImportError::Empty)
    ));
    assert!(matches!(
        CsvReader::new(&b"\xEF\xBB\xBF\n\n"[..], None),
        Err(ImportError::Empty)
    ));
    let err = CsvReader::new(&b"mail,name\nx@example.pk,X\n"[..], None)
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "the header row has no `email` column (it has: \"mail\", \"name\"); the first row must name the columns, e.g. `email,name,categories`"
    );
    assert!(matches!(
        CsvReader::new(&b"email,Email\n"[..], None),
        Err(ImportError::DuplicateColumn(_))
    ));
    assert!(matches!(
        CsvReader::new(&b"email,n\xFFme\n"[..], None),
        Err(ImportError::Header(_))
    ));
}

#[test]
fn urdu_names_and_categories() {
    let input = "email,name,categories\nfatima@example.pk,فاطمہ علی,سیاست\n";
    let (good, bad) = read_all(input.as_bytes(), None);
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(good[0].name.as_deref(), Some("فاطمہ علی"));
    assert_eq!(good[0].categories.as_ref().unwrap().to_stored(), "سیاست");
}

#[test]
fn control_characters_in_names_are_cleaned_like_everywhere_else() {
    let (good, bad) = read_all(
        b"email,name\nx@example.pk,Ali\x07\ny@example.pk,\"Bob\x1b[2J\r\nBcc: x\"\n",
        None,
    );
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(good[0].name.as_deref(), Some("Ali"));
    assert_eq!(good[1].name.as_deref(), Some("Bob [2J Bcc: x"));
}

#[test]
fn separators_only_means_all_categories() {
    let (good, _) = read_all(b"email,categories\nx@example.pk,\" ; ;\"\n", None);
    assert_eq!(good[0].categories, None);
}

#[test]
fn duplicates_compare_the_whole_address_case_insensitively() {
    let input = "email\nÖmer@example.com\nömer@EXAMPLE.com\nomer@example.com\n";
    let (good, bad) = read_all(input.as_bytes(), None);
    assert_eq!(good.len(), 2);
    assert_eq!(bad[0].line, 3);
    assert_eq!(bad[0].reason, "duplicate of line 2");
}

#[test]
fn a_rejected_row_does_not_claim_its_address() {
    let input = b"email,categories\nx@example.pk,Cricket\nx@example.pk,Sport\n";
    let (good, bad) = read_all(input, Some(set("Sport")));
    assert_eq!(bad.len(), 1);
    assert_eq!(good[0].line, 3);
}

#[test]
fn export_then_import_round_trips() {
    let rows = vec![
        ExportRow {
            email: "ayesha.khan@example.pk".into(),
            name: Some("Khan, Ayesha \"AK\"".into()),
            categories: Some(set("Politics;Business")),
            status: "active".into(),
            list: "daily".into(),
        },
        ExportRow {
            email: "imran@example.com".into(),
            name: Some("عمران احمد".into()),
            categories: None,
            status: "unsubscribed".into(),
            list: "daily".into(),
        },
        ExportRow {
            email: "=cmd|'/Ccalc'!A0@example.org".into(),
            name: Some("@SUM(1+1)*cmd|' /C calc'!A0".into()),
            categories: Some(set("-Sport")),
            status: "active".into(),
            list: "daily".into(),
        },
        ExportRow {
            email: "plain@example.org".into(),
            name: Some("'=already'".into()),
            categories: None,
            status: "active".into(),
            list: "daily".into(),
        },
    ];
    let mut out = Vec::new();
    write_export(&mut out, rows.clone().into_iter()).unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(
        text.starts_with("email,name,categories,status,list\n"),
        "{text}"
    );
    // No cell a spreadsheet would run, however it splits: never = + - @ after `,` or `;`.
    for cell in text.split([',', ';', '\n']) {
        let inner = cell.trim_start_matches('"');
        assert!(
            !inner.starts_with(['=', '+', '-', '@']),
            "{cell:?} in {text}"
        );
    }
    assert!(text.contains("\n'=cmd|'/Ccalc'!A0@example.org,"), "{text}");

    let reader = CsvReader::new(&out[..], Some(set("Business;Politics;-Sport"))).unwrap();
    assert!(reader.warnings().is_empty());
    let back: Vec<SubscriberRow> = reader.map(Result::unwrap).collect();
    assert_eq!(back.len(), rows.len());
    for (orig, got) in rows.iter().zip(&back) {
        assert_eq!(got.email.as_str(), orig.email);
        assert_eq!(got.name, orig.name);
        assert_eq!(got.categories, orig.categories);
    }
}

#[test]
fn sample_file_imports_cleanly() {
    let sample = include_bytes!("../../../subscribers/sample.csv");
    let list = set("General News;Politics;Business;Sport");
    let reader = CsvReader::new(&sample[..], Some(list)).unwrap();
    assert!(reader.warnings().is_empty());
    let rows: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
    assert!(rows.len() >= 10);
}

#[test]
fn bad_example_file_has_one_row_per_defect() {
    let bad_example = include_bytes!("../../../subscribers/bad-example.csv");
    let list = set("General News;Politics;Business;Sport");
    let reader = CsvReader::new(&bad_example[..], Some(list))
        .unwrap()
        .with_list_name("daily");
    assert_eq!(reader.warnings().len(), 1);
    let (good, bad): (Vec<_>, Vec<_>) = reader.partition(Result::is_ok);
    assert_eq!(good.len(), 2);
    let reasons: Vec<String> = bad
        .into_iter()
        .map(|e| e.unwrap_err().to_string())
        .collect();
    for want in [
        "invalid email address",
        "is not carried by list daily",
        "duplicate of line",
        "not valid UTF-8",
        "email address is",
        "name is",
        "categories cell is",
        "missing email address",
        "expected 4 fields",
    ] {
        assert_eq!(
            reasons.iter().filter(|r| r.contains(want)).count(),
            1,
            "{want:?} in {reasons:#?}"
        );
    }
    assert_eq!(reasons.len(), 9);
}

/// Throughput check: `cargo test --release --lib import::subscribers_csv -- --ignored`.
#[test]
#[ignore = "timing; run in release"]
fn parses_a_million_rows_quickly() {
    let mut input = String::from("email,name,categories\n");
    for i in 0..1_000_000 {
        input.push_str(&format!(
            "reader.{i}@example.pk,Reader Number {i},Politics;Business\n"
        ));
    }
    let list = set("General News;Politics;Business;Sport");
    let start = std::time::Instant::now();
    let reader = CsvReader::new(input.as_bytes(), Some(list)).unwrap();
    let n = reader.filter(Result::is_ok).count();
    let elapsed = start.elapsed();
    assert_eq!(n, 1_000_000);
    let rate = n as f64 / elapsed.as_secs_f64();
    eprintln!("{n} rows in {elapsed:?}: {rate:.0} rows/s");
}

#[test]
fn an_exported_unsubscribe_is_marked() {
    let input = b"email,name,categories,status,list\na@example.pk,,,active,daily\nb@example.pk,,,Unsubscribed,daily\n";
    let rows: Vec<_> = CsvReader::new(&input[..], None)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(!rows[0].unsubscribed);
    assert!(rows[1].unsubscribed);
}
