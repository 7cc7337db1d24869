//! The page's readers of the user's tables and NumPy archives, in a browser: the bytes of the
//! repository's fixtures through `UserData` (the same `data::intake` step as native `train`),
//! their listing, a whole training run on the CPU backend in wasm, a row read back, and the
//! errors that name the file. (Picture folders need the ingest worker: `web/e2e/own.mjs`.)
#![cfg(target_arch = "wasm32")]

use serde_json::Value;
use soma_web::{Setup, Trainer, UserData};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const IRIS: &[u8] = include_bytes!("../../tests/data/csv/iris.csv");
const TEXT_IN_NUMBER: &[u8] = include_bytes!("../../tests/data/csv/text_in_number.csv");
const KERAS: &[u8] = include_bytes!("../../tests/data/npy/keras.npz");

fn json(v: JsValue) -> Value {
    serde_wasm_bindgen::from_value(v).expect("plain data")
}

fn message(e: wasm_bindgen::JsError) -> String {
    let v: JsValue = e.into();
    js_sys::Reflect::get(&v, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_default()
}

#[wasm_bindgen_test]
fn a_csv_is_listed_as_train_lists_it() {
    let data = UserData::from_table("iris.csv".into(), IRIS.to_vec(), JsValue::UNDEFINED)
        .expect("iris reads");
    let s = json(data.summary().unwrap());
    assert_eq!(s["format"], "csv");
    let classes: Vec<&str> = s["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["setosa", "versicolor", "virginica"]);
    assert_eq!(s["features"], 4);
    assert_eq!(s["image"], Value::Null);
    // 30 rows, 20% of each class held out.
    assert_eq!(s["trainSamples"], 24);
    assert_eq!(s["testSamples"], 6);
    assert!(s["split"].as_str().unwrap().contains("20% of each class"));
}

#[wasm_bindgen_test]
fn bad_tables_and_archives_are_errors_naming_the_file() {
    let e = UserData::from_table(
        "numbers.csv".into(),
        TEXT_IN_NUMBER.to_vec(),
        JsValue::UNDEFINED,
    )
    .err()
    .expect("text in a numeric label column of few rows is refused");
    assert!(message(e).contains("numbers.csv"));
    let e = UserData::from_npz(
        "broken.npz".into(),
        KERAS[..40].to_vec(),
        JsValue::UNDEFINED,
    )
    .err()
    .expect("a truncated archive is refused");
    assert!(
        message(e).contains("broken.npz"),
        "{}",
        "message names the file"
    );
}

#[wasm_bindgen_test]
fn an_npz_of_images_keeps_its_own_split_and_gives_thumbnails() {
    let data = UserData::from_npz("keras.npz".into(), KERAS.to_vec(), JsValue::UNDEFINED)
        .expect("the Keras-named archive reads");
    let s = json(data.summary().unwrap());
    assert_eq!(s["image"], serde_json::json!([1, 4, 4]));
    assert_eq!(s["trainSamples"], 8);
    assert_eq!(s["testSamples"], 3);
    // Two RGBA thumbnails of 4×4 for a class with at least two training samples.
    let class = s["classes"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["train"].as_u64().unwrap() >= 2)
        .expect("a class of two") as u32;
    assert_eq!(data.thumbnails(class, 2).length(), 2 * 4 * 4 * 4);
}

#[wasm_bindgen_test]
async fn a_table_trains_in_the_page_and_reads_rows() {
    let options = serde_wasm_bindgen::to_value(&serde_json::json!({
        "backend": "cpu", "data": "own"
    }))
    .unwrap();
    let setup = Setup::open(options).await.expect("the CPU setup");
    let data = UserData::from_table("iris.csv".into(), IRIS.to_vec(), JsValue::UNDEFINED).unwrap();
    let mut trainer = Trainer::create_from(setup, data).await.expect("a trainer");
    let info = json(trainer.info().unwrap());
    // The tabular recipe, as native `train` chooses for vectors.
    assert_eq!(
        info["network"],
        "4-100-3 (relu hidden, softmax-cross-entropy)"
    );
    let mut last = Value::Null;
    while !trainer.finished() {
        last = json(trainer.step().await.unwrap());
    }
    assert_eq!(last["finished"], true);
    let confusion = json(trainer.confusion().await.unwrap());
    let m = confusion["matrix"].as_array().unwrap();
    let right: u64 = (0..3).map(|i| m[i][i].as_u64().unwrap()).sum();
    // The tabular recipe's 200 epochs on the fixture's 24 rows: native `train` gets all 6 test
    // rows; a network that learnt nothing gets 2.
    assert!(right >= 5, "{right} of 6 right");
    let rows = b"sepal_length,sepal_width,petal_length,petal_width\n5.0,3.4,1.5,0.2\n";
    let answers = json(
        trainer
            .predict_rows("new.csv".into(), rows.to_vec())
            .await
            .unwrap(),
    );
    assert_eq!(answers[0]["line"], 2);
    assert_eq!(answers[0]["top"][0]["name"], "setosa");
}
