//! Regression: a misspelt rule field (`levl: high`, `Tags:`, a logsource's `prodcut:`)
//! loaded without a word, so the rule ran with no level, no tags or the wrong
//! logsource. Keys that look like a known field misspelt are now warnings naming the
//! line and the field meant; custom fields (the Sigma specification allows them, and
//! SigmaHQ's rules carry `regression_tests_path` and `simulation`) stay silent.

use vigil_sigma::Loader;

fn warnings_of(text: &str) -> Vec<String> {
    let mut loader = Loader::new();
    assert_eq!(loader.add("r.yml", text), 1, "the rule loads");
    let built = loader.build();
    assert!(built.errors.is_empty(), "{:?}", built.errors);
    built.warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn misspelt_fields_are_warned_of_with_their_line_and_the_field_meant() {
    let w = warnings_of(
        "title: T\nlevl: high\nTags: [attack.t1059]\n\
         logsource:\n    prodcut: linux\n    category: process_creation\n\
         detection:\n    sel:\n        Image|endswith: /x\n    condition: sel\n\
         falsepositive: none\n",
    );
    assert_eq!(
        w,
        vec![
            "r.yml:2: warning: unknown field `levl`, ignored: did you mean `level`?",
            "r.yml:3: warning: unknown field `Tags`, ignored: did you mean `tags`?",
            "r.yml:11: warning: unknown field `falsepositive`, ignored: did you mean `falsepositives`?",
            "r.yml:5: warning: unknown logsource field `prodcut`, ignored: did you mean `product`?",
        ]
    );
}

#[test]
fn custom_fields_load_silently() {
    let w = warnings_of(
        "title: T\nlevel: high\nregression_tests_path: a/b\nsimulation: [{type: atomic}]\n\
         x_owner: soc\nlogsource: {product: linux, category: process_creation, x_site: eu}\n\
         detection:\n    sel:\n        Image|endswith: /x\n    condition: sel\n",
    );
    assert!(w.is_empty(), "{w:?}");
}
