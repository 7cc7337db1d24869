//! Tests of the CSV reader through its public API, and of the parallel reader against the
//! single-threaded one with small ranges and buffers, so that chunk boundaries land everywhere.

use super::*;

fn p() -> &'static Path {
    Path::new("t.csv")
}

fn parse(text: &str) -> Result<Table> {
    parse_csv(p(), text.as_bytes(), &CsvOptions::default())
}

fn err(text: &str, opts: &CsvOptions) -> String {
    parse_csv(p(), text.as_bytes(), opts)
        .unwrap_err()
        .to_string()
}

fn numeric(t: &Table) -> &[f64] {
    match &t.labels {
        Labels::Numeric(v) => v,
        Labels::Text { .. } => panic!("text labels"),
    }
}

#[test]
fn detects_each_delimiter() {
    for (d, text) in [
        (b',', "a,b,c\n1,2,3\n4,5,6\n"),
        (b';', "a;b;c\n1;2,5;3\n4;5;6\n"),
        (b'\t', "a\tb\tc\n1\t2\t3\n4\t5\t6\n"),
    ] {
        let t = parse(text).unwrap();
        assert_eq!(t.delimiter, d, "{text}");
        assert_eq!(t.rows(), 2);
    }
    let tsv = parse_csv(
        Path::new("x.tsv"),
        b"1.5\t2\n3\t4\n",
        &CsvOptions::default(),
    );
    let t = tsv.unwrap();
    assert_eq!(t.delimiter, b'\t');
    assert!(!t.header);
}

#[test]
fn semicolon_beats_decimal_commas_when_regular() {
    let t = parse("x;y\n1,5;2\n3;4\n").unwrap();
    assert_eq!(t.delimiter, b';');
    // `1,5` is not a number: the column is text.
    assert_eq!(t.feature_names(), ["x=1,5", "x=3"]);
}

#[test]
fn detects_header_or_not() {
    let t = parse("x1,x2,label\n1,2,0\n3,4,1\n").unwrap();
    assert!(t.header);
    assert_eq!(t.label_name, "label");
    assert_eq!(t.lines, vec![2, 3]);
    let t = parse("1,2,0\n3,4,1\n").unwrap();
    assert!(!t.header);
    assert_eq!(t.label_name, "column_3");
    assert_eq!(t.lines, vec![1, 2]);
    assert_eq!(t.values, vec![1.0, 2.0, 3.0, 4.0]);
    // All text: a header when its cells do not recur below.
    let t = parse("color,size\nred,big\nblue,small\n").unwrap();
    assert!(t.header);
    let t = parse("red,big\nblue,small\nred,small\n").unwrap();
    assert!(!t.header);
    assert_eq!(t.rows(), 3);
}

#[test]
fn bom_crlf_and_blank_lines() {
    let t = parse("\u{feff}a,b\r\n1,2\r\n\r\n  \r\n3,4\r\n\r\n").unwrap();
    assert!(t.header);
    assert_eq!(t.columns[0].name, "a");
    assert_eq!(t.values, vec![1.0, 3.0]);
    assert_eq!(numeric(&t), &[2.0, 4.0]);
    assert_eq!(t.lines, vec![2, 5]);
}

#[test]
fn quotes_and_escaped_quotes() {
    let t = parse("\"name, full\",\"v\"\n\"say \"\"hi\"\"\", \"1\" \n\"x\",2\n").unwrap();
    assert_eq!(t.columns[0].name, "name, full");
    let Encoding::OneHot { levels } = &t.columns[0].encoding else {
        panic!("not one-hot");
    };
    assert_eq!(levels, &["say \"hi\"", "x"]);
    assert_eq!(t.values, vec![1.0, 0.0, 0.0, 1.0]);
    assert_eq!(numeric(&t), &[1.0, 2.0]);
}

#[test]
fn quoted_newline_refused() {
    let e = err("a,b\n1,\"x\ny\"\n", &CsvOptions::default());
    assert!(e.contains("multi-line fields are not supported"), "{e}");
    assert!(e.contains("line 2"), "{e}");
    let e = err("a,b\n1,\"x\" y\n", &CsvOptions::default());
    assert!(e.contains("after the closing quote"), "{e}");
}

#[test]
fn label_by_name_index_default_and_last() {
    let text = "id,Target,f\n1,2,3\n4,5,6\n";
    let t = parse(text).unwrap();
    assert_eq!(t.label_name, "Target");
    assert_eq!(numeric(&t), &[2.0, 5.0]);
    assert_eq!(t.feature_names(), ["id", "f"]);
    let by = |label| CsvOptions {
        label: Some(label),
        ..CsvOptions::default()
    };
    let t = parse_csv(p(), text.as_bytes(), &by(LabelColumn::Name("f".into()))).unwrap();
    assert_eq!(numeric(&t), &[3.0, 6.0]);
    let t = parse_csv(p(), text.as_bytes(), &by(LabelColumn::Index(0))).unwrap();
    assert_eq!(numeric(&t), &[1.0, 4.0]);
    let e = err(text, &by(LabelColumn::Name("nope".into())));
    assert!(
        e.contains("`id`, `Target`, `f`") && e.contains("`nope`"),
        "{e}"
    );
    let e = err(text, &by(LabelColumn::Index(3)));
    assert!(e.contains("below 3"), "{e}");
    for name in ["label", "CLASS", "y"] {
        let t = parse(&format!("a,{name},b\n1,2,3\n")).unwrap();
        assert_eq!(t.label_name, name);
    }
    let t = parse("a,b,c\n1,2,3\n").unwrap();
    assert_eq!(t.label_name, "c");
}

#[test]
fn text_labels_sorted() {
    let t = parse("x,species\n1,virginica\n2,setosa\n3,versicolor\n4,setosa\n").unwrap();
    let Labels::Text { codes, levels } = &t.labels else {
        panic!("numeric labels");
    };
    assert_eq!(levels, &["setosa", "versicolor", "virginica"]);
    assert_eq!(codes, &[2, 0, 1, 0]);
}

#[test]
fn one_hot_with_feature_names() {
    let t = parse("color,w,y\nred,1,0\nblue,2,1\nred,3,0\n").unwrap();
    assert_eq!(t.width, 3);
    assert_eq!(t.feature_names(), ["color=blue", "color=red", "w"]);
    assert_eq!(t.values, vec![0., 1., 1., 1., 0., 2., 0., 1., 3.]);
}

#[test]
fn too_many_levels_refused() {
    let mut text = String::from("c,y\n");
    for i in 0..30 {
        text.push_str(&format!("v{i},1\n"));
    }
    let e = err(&text, &CsvOptions::default());
    assert!(
        e.contains("column `c`, 1") && e.contains("30 distinct values"),
        "{e}"
    );
    assert!(e.contains("at most 20"), "{e}");
    let many = CsvOptions {
        max_levels: 30,
        ..CsvOptions::default()
    };
    assert_eq!(parse_csv(p(), text.as_bytes(), &many).unwrap().width, 30);
}

#[test]
fn ragged_rows() {
    let e = err("a,b,c\n1,2,3\n\n4,5\n", &CsvOptions::default());
    assert!(
        e.contains("3 fields") && e.contains("2 fields on line 4"),
        "{e}"
    );
    let e = err("a,b,c\n1,2,3\n4,5,6,7,8\n", &CsvOptions::default());
    assert!(e.contains("5 fields on line 3"), "{e}");
}

#[test]
fn text_in_numeric_column() {
    let mut text = String::from("petal_length,petal_width,y\n");
    for _ in 0..SAMPLE_ROWS + 5 {
        text.push_str("1.5,0.2,0\n");
    }
    text.push_str("1.4,abc,1\n");
    let e = err(&text, &CsvOptions::default());
    let line = SAMPLE_ROWS + 7;
    assert!(e.contains("a number (column `petal_width`, 2)"), "{e}");
    assert!(e.contains(&format!("`abc` on line {line}")), "{e}");
}

#[test]
fn missing_cells() {
    let text = "a,b,y\n1,,0\nNA,2,1\n3,null,0\n";
    let e = err(text, &CsvOptions::default());
    assert!(
        e.contains("column `b`, 2") && e.contains("empty cell on line 2"),
        "{e}"
    );
    assert!(e.contains("--fill mean|zero"), "{e}");
    let opts = CsvOptions {
        allow_missing: true,
        ..CsvOptions::default()
    };
    let t = parse_csv(p(), text.as_bytes(), &opts).unwrap();
    assert_eq!(t.missing, 3);
    assert!(t.values[1].is_nan() && t.values[2].is_nan() && t.values[5].is_nan());
    assert_eq!((t.values[0], t.values[3], t.values[4]), (1.0, 2.0, 3.0));
    // A one-hot cell missing: all its slots are NaN.
    let t = parse_csv(p(), b"c,y\nred,0\nN/A,1\nblue,0\n", &opts).unwrap();
    assert!(t.values[2..4].iter().all(|v| v.is_nan()));
    let e = err("a,y\n1,\n", &opts);
    assert!(e.contains("bad label") && e.contains("line 2"), "{e}");
}

#[test]
fn empty_header_only_single_column() {
    let opts = CsvOptions::default();
    assert!(err("", &opts).contains("an empty file"));
    assert!(err("\n \n", &opts).contains("an empty file"));
    let e = err("a,b,label\n", &opts);
    assert!(e.contains("only the header (line 1)"), "{e}");
    let e = err("a\n1\n2\n", &opts);
    assert!(e.contains("a single column"), "{e}");
}

#[test]
fn infinities_refused() {
    for cell in ["inf", "-Infinity", "1e39"] {
        let e = err(&format!("a,y\n1,0\n{cell},1\n"), &CsvOptions::default());
        assert!(
            e.contains("finite") && e.contains(&format!("`{cell}` on line 3")),
            "{e}"
        );
    }
    let t = parse("a,y\n+1.5e2, -3 \n.5,2.\n").unwrap();
    assert_eq!(t.values, vec![150.0, 0.5]);
    assert_eq!(numeric(&t), &[-3.0, 2.0]);
}

#[test]
fn prediction_rows() {
    let t = parse("color,w,y\nred,1,0\nblue,2,1\n").unwrap();
    let (values, lines) =
        parse_rows_with(p(), b"w,color\n5,blue\n\n6,red\n", &t.columns, None, false).unwrap();
    assert_eq!(values, vec![1., 0., 5., 0., 1., 6.]);
    assert_eq!(lines, vec![2, 4]);
    let (values, _) =
        parse_rows_with(p(), b"red,7\nblue,8\n", &t.columns, Some("y"), false).unwrap();
    assert_eq!(values, vec![0., 1., 7., 1., 0., 8.]);
    let (values, _) =
        parse_rows_with(p(), b"y,color,w\n1,red,9\n", &t.columns, Some("y"), false).unwrap();
    assert_eq!(values, vec![0., 1., 9.]);
    let e = parse_rows_with(p(), b"color,w\ngreen,1\n", &t.columns, None, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("column `color`, 1") && e.contains("`green` on line 2"),
        "{e}"
    );
    let e = parse_rows_with(p(), b"color,w,z\nred,1,2\n", &t.columns, None, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("column `z`"), "{e}");
    // One feature: a file of one column has no delimiter to detect.
    let one = [FeatureColumn {
        name: "w".into(),
        encoding: Encoding::Numeric,
    }];
    let (values, lines) = parse_rows_with(p(), b"w\n1.5\nNA\n", &one, None, true).unwrap();
    assert_eq!((values[0], lines), (1.5, vec![2, 3]));
    assert!(values[1].is_nan());
}

/// A training table with a one-hot column (`color`: blue, red), a numeric one (`w`) and text
/// classes (`y`: cat, dog, owl).
fn trained() -> Table {
    parse("color,w,y\nred,1,dog\nblue,2,cat\nred,3,owl\n").unwrap()
}

fn classes(t: &Table) -> &[String] {
    match &t.labels {
        Labels::Text { levels, .. } => levels,
        Labels::Numeric(_) => panic!("numeric labels"),
    }
}

/// A test file read against `trained()`'s schema with its classes, by `parse_labelled_rows_with`
/// and (native) by `read_labelled_rows_with` in small ranges and buffers, which must agree.
fn labelled(text: &str, allow_missing: bool) -> Result<(Vec<f32>, Labels, Vec<u64>)> {
    let t = trained();
    let schema = LabelSchema::Text(classes(&t));
    let parsed =
        parse_labelled_rows_with(p(), text.as_bytes(), &t.columns, "y", schema, allow_missing);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let dir = std::env::temp_dir().join(format!(
            "soma-csv-l{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.csv");
        std::fs::write(&path, text).unwrap();
        let read = native::read_labelled(&path, &t.columns, "y", schema, allow_missing, 3, 16);
        std::fs::remove_dir_all(&dir).unwrap();
        // The messages name different paths; the rest must be the same.
        let show = |r: &Result<(Vec<f32>, Labels, Vec<u64>)>| {
            format!("{r:?}").replace(&path.display().to_string(), "t.csv")
        };
        assert_eq!(show(&read), show(&parsed));
    }
    parsed
}

fn labelled_err(text: &str) -> String {
    labelled(text, false).unwrap_err().to_string()
}

#[test]
fn test_rows_keep_training_codes_in_any_column_order() {
    let (values, labels, lines) = labelled("y,w,color\nowl,5,blue\n\ncat,6,red\n", false).unwrap();
    // Matrix columns in the schema's order: color=blue, color=red, w.
    assert_eq!(values, vec![1., 0., 5., 0., 1., 6.]);
    assert_eq!(lines, vec![2, 4]);
    // Codes into the training classes, even though the file lacks `dog`.
    let Labels::Text { codes, levels } = labels else {
        panic!("numeric labels");
    };
    assert_eq!(levels, ["cat", "dog", "owl"]);
    assert_eq!(codes, vec![2, 0]);
    let (_, labels, lines) = labelled("color,w,y\n", false).unwrap();
    assert!(labels.is_empty() && lines.is_empty());
    // The training file itself, read as a test file, gives the training table.
    let t = trained();
    let own = labelled("color,w,y\nred,1,dog\nblue,2,cat\nred,3,owl\n", false).unwrap();
    assert_eq!(own, (t.values, t.labels, t.lines));
}

#[test]
fn test_rows_numeric_labels() {
    let t = parse("a,b,price\n1,2,10.5\n3,4,20\n").unwrap();
    let text = b"price,b,a\n-3.25,8,7\n1e3,NA,9\n";
    let (values, labels, lines) =
        parse_labelled_rows_with(p(), text, &t.columns, "price", LabelSchema::Numeric, true)
            .unwrap();
    assert_eq!(labels, Labels::Numeric(vec![-3.25, 1000.0]));
    assert_eq!(lines, vec![2, 3]);
    assert_eq!((values[0], values[1], values[2]), (7.0, 8.0, 9.0));
    assert!(values[3].is_nan());
    let e = parse_labelled_rows_with(
        p(),
        b"a,b,price\n1,2,cheap\n",
        &t.columns,
        "price",
        LabelSchema::Numeric,
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("t.csv") && e.contains("column `price`, 3") && e.contains("`cheap` on line 2"),
        "{e}"
    );
}

#[test]
fn test_rows_unseen_class_and_level() {
    let e = labelled_err("color,w,y\nred,1,cat\nblue,2,emu\n");
    assert!(e.starts_with("t.csv: bad label"), "{e}");
    assert!(
        e.contains("column `y`, 3") && e.contains("`emu` on line 3"),
        "{e}"
    );
    assert!(e.contains("`cat`, `dog`, `owl`"), "{e}");
    // Of many classes, a few are named and all counted.
    let many: Vec<String> = (0..50).map(|i| format!("c{i:02}")).collect();
    let t = trained();
    let e = parse_labelled_rows_with(
        p(),
        b"w,color,y\n1,red,zz\n",
        &t.columns,
        "y",
        LabelSchema::Text(&many),
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`c05`, … (50 in all)") && !e.contains("c06"),
        "{e}"
    );
    let e = labelled_err("color,w,y\nred,1,cat\ngreen,2,dog\n");
    assert!(
        e.contains("training levels (column `color`, 1)") && e.contains("`green` on line 3"),
        "{e}"
    );
}

#[test]
fn test_rows_missing_label() {
    // A missing label is an error even where missing features are filled.
    for (text, cell) in [
        ("w,color,y\n1,red,cat\n2,blue,\n", "an empty cell on line 3"),
        ("w,color,y\n1,red,NA\n", "`NA` on line 2"),
    ] {
        let e = labelled(text, true).unwrap_err().to_string();
        assert!(
            e.contains(
                "bad label: expected a label (column `y`, 3); rows without one cannot be used"
            ) && e.contains(cell),
            "{e}"
        );
    }
    let (values, _, _) = labelled("w,color,y\n,red,cat\n", true).unwrap();
    assert!(values[2].is_nan());
    let e = labelled_err("w,color,y\n,red,cat\n");
    assert!(
        e.contains("column `w`, 1") && e.contains("empty cell on line 2"),
        "{e}"
    );
}

#[test]
fn test_rows_need_a_header() {
    for text in [
        "red,1,cat\nblue,2,dog\n",
        "color,w\nred,1\n",
        "color,w,label\nred,1,cat\n",
    ] {
        let e = labelled_err(text);
        assert!(
            e.starts_with("t.csv: bad header")
                && e.contains("a test file needs a header naming its columns")
                && e.contains("(`y`, `color`, `w`)")
                && e.contains("line 1, which does not name `y`"),
            "{e}"
        );
    }
}

#[test]
fn test_rows_refuse_unknown_or_repeated_columns() {
    let e = labelled_err("color,w,y,id\nred,1,cat,7\n");
    assert!(
        e.contains("the training columns `color`, `w` and the label `y`")
            && e.contains("column `id` (4) on line 1"),
        "{e}"
    );
    let e = labelled_err("y,color,w,y\ncat,red,1,dog\n");
    assert!(e.contains("column `y` (4) on line 1"), "{e}");
}

#[test]
fn test_rows_crlf_bom_tsv() {
    let text = "\u{feff}\r\nw,y,color\r\n4,dog,red\r\n\r\n5,cat,blue\r\n";
    let (values, labels, lines) = labelled(text, false).unwrap();
    assert_eq!(values, vec![0., 1., 4., 1., 0., 5.]);
    assert!(matches!(labels, Labels::Text { codes, .. } if codes == [1, 0]));
    assert_eq!(lines, vec![3, 5]);
    let t = trained();
    let (_, labels, _) = parse_labelled_rows_with(
        Path::new("t.tsv"),
        b"y\tcolor\tw\r\nowl\tred\t1\r\n",
        &t.columns,
        "y",
        LabelSchema::Text(classes(&t)),
        false,
    )
    .unwrap();
    assert!(matches!(labels, Labels::Text { codes, .. } if codes == [2]));
}

/// A fixture of tests/data/csv, read by `read_csv` (and checked against `parse_csv`).
#[cfg(not(target_arch = "wasm32"))]
fn fixture(name: &str, opts: &CsvOptions) -> Result<Table> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/csv")
        .join(name);
    let bytes = std::fs::read(&path).unwrap();
    let read = read_csv(&path, opts);
    let parsed = parse_csv(&path, &bytes, opts);
    // Debug text, so that NaN cells compare equal.
    assert_eq!(format!("{read:?}"), format!("{parsed:?}"));
    read
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn fixtures() {
    let opts = CsvOptions::default();
    let iris = fixture("iris.csv", &opts).unwrap();
    assert_eq!((iris.rows(), iris.width, iris.delimiter), (30, 4, b','));
    assert_eq!(iris.label_name, "species");
    assert_eq!(&iris.values[..4], &[5.1, 3.5, 1.4, 0.2]);
    let Labels::Text { codes, levels } = &iris.labels else {
        panic!("numeric species");
    };
    assert_eq!(levels, &["setosa", "versicolor", "virginica"]);
    assert_eq!((codes[0], codes[10], codes[29]), (0, 1, 2));

    let semi = fixture("semicolon.csv", &opts).unwrap();
    assert_eq!(semi.delimiter, b';');
    let names = [
        "area",
        "rooms",
        "heating=electric",
        "heating=gas",
        "heating=heat pump",
    ];
    assert_eq!(semi.feature_names(), names);
    assert_eq!(&semi.values[..5], &[54.5, 2.0, 0.0, 1.0, 0.0]);
    assert!(matches!(&semi.labels, Labels::Numeric(p) if p[0] == 182000.0));

    let tsv = fixture("no_header.tsv", &opts).unwrap();
    assert!(!tsv.header);
    assert_eq!(
        (tsv.rows(), tsv.width, tsv.label_name.as_str()),
        (6, 3, "column_4")
    );

    let e = fixture("missing.csv", &opts).unwrap_err().to_string();
    assert!(
        e.contains("column `income`, 2") && e.contains("empty cell on line 3"),
        "{e}"
    );
    let filled = CsvOptions {
        allow_missing: true,
        ..CsvOptions::default()
    };
    let missing = fixture("missing.csv", &filled).unwrap();
    assert_eq!((missing.rows(), missing.missing), (6, 4));
    // Two incomes and an age, and the three slots of the missing city.
    assert_eq!(
        missing.values.iter().filter(|v| v.is_nan()).count(),
        2 + 1 + 3
    );

    let e = fixture("ragged.csv", &opts).unwrap_err().to_string();
    assert!(
        e.contains("4 fields") && e.contains("3 fields on line 4"),
        "{e}"
    );

    let e = fixture("text_in_number.csv", &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("(column `petal_width`, 1)"), "{e}");
    assert!(e.contains("`abc` on line 1012"), "{e}");
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn iris_predicted_against_its_schema() {
    let iris = fixture("iris.csv", &CsvOptions::default()).unwrap();
    let text = "petal_width,petal_length,sepal_width,sepal_length\n0.2,1.4,3.5,5.1\n";
    let (values, lines) =
        parse_rows_with(p(), text.as_bytes(), &iris.columns, Some("species"), false).unwrap();
    assert_eq!((values, lines), (vec![5.1, 3.5, 1.4, 0.2], vec![2]));
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn iris_test_file_read_in_parallel() {
    let iris = fixture("iris.csv", &CsvOptions::default()).unwrap();
    let mut text = String::from("species,petal_width,petal_length,sepal_width,sepal_length\r\n");
    let kinds = ["virginica", "setosa", "versicolor"];
    for i in 0..3000 {
        text.push_str(&format!("{},0.2,1.4,3.5,{i}\r\n", kinds[i % 3]));
    }
    let dir = std::env::temp_dir().join(format!("soma-csv-t{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("test.csv");
    std::fs::write(&path, &text).unwrap();
    let schema = LabelSchema::Text(classes(&iris));
    let read = read_labelled_rows_with(&path, &iris.columns, "species", schema, false);
    let chunked = native::read_labelled(&path, &iris.columns, "species", schema, false, 4, 64);
    let missing = read_labelled_rows_with(
        &dir.join("nope.csv"),
        &iris.columns,
        "species",
        schema,
        false,
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let parsed = parse_labelled_rows_with(
        &path,
        text.as_bytes(),
        &iris.columns,
        "species",
        schema,
        false,
    )
    .unwrap();
    assert_eq!(read.unwrap(), parsed);
    assert_eq!(chunked.unwrap(), parsed);
    let (values, labels, lines) = parsed;
    assert_eq!(&values[4..8], &[1.0, 3.5, 1.4, 0.2]);
    assert!(matches!(labels, Labels::Text { codes, .. } if codes[..3] == [2, 0, 1]));
    assert_eq!((lines[0], lines[2999]), (2, 3001));
    let e = missing.unwrap_err().to_string();
    assert!(e.contains("nope.csv"), "{e}");
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn parallel_equals_single_threaded() {
    let mut text = String::from("\u{feff}px1;px2;\"kind\";label\r\n");
    for i in 0..2000u32 {
        if i % 97 == 0 {
            text.push('\n');
        }
        let kind = ["a", "b", "\"c\"\"\""][(i % 3) as usize];
        text.push_str(&format!("{};{}.5;{kind};{}\r\n", i % 256, i, i % 10));
    }
    let dir = std::env::temp_dir().join(format!("soma-csv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("multi.csv");
    std::fs::write(&path, &text).unwrap();
    let opts = CsvOptions {
        threads: 3,
        ..CsvOptions::default()
    };
    let single = parse_csv(&path, text.as_bytes(), &opts).unwrap();
    let chunked = native::read(&path, &opts, 5, 64).unwrap();
    let whole = read_csv(&path, &opts).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(single.rows(), 2000);
    // A blank line before rows 0, 97, … 1940: 21 of them.
    assert_eq!(single.lines[0], 3);
    assert_eq!(single.lines[1999], 1 + 21 + 2000);
    assert_eq!(single, chunked);
    assert_eq!(single, whole);
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn parallel_errors_name_the_same_line() {
    let mut text = String::from("a,b\n");
    for i in 0..SAMPLE_ROWS + 100 {
        text.push_str(&format!("{i},1\n"));
    }
    text.push_str("7,x\n");
    let dir = std::env::temp_dir().join(format!("soma-csv-e{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.csv");
    std::fs::write(&path, &text).unwrap();
    let opts = CsvOptions {
        threads: 2,
        ..CsvOptions::default()
    };
    let chunked = native::read(&path, &opts, 4, 32).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    let line = SAMPLE_ROWS + 102;
    assert!(
        chunked.contains(&format!("`x` on line {line}")),
        "{chunked}"
    );
}
