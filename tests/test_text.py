from ltrr_core.text import dominant_script, fold, name_key, normalize


def test_normalize_folds_case_diacritics_punctuation_and_width():
    assert normalize("Beyoncé — Halo!") == "beyonce halo"
    assert normalize("ＡＢＣ  Déjà\tvu") == "abc deja vu"
    assert normalize("Guns N' Roses") == "guns n roses"
    assert normalize("Don't Stop Me Now") == "dont stop me now"
    assert normalize("Simon & Garfunkel") == "simon and garfunkel"
    assert normalize(None) == "" and normalize(float("nan")) == ""


def test_fold_keeps_brackets_for_content_rules():
    assert fold("  Halo (LIVE at Wembley) ") == "halo (live at wembley)"


def test_name_key_drops_leading_article_only_for_multiword_names():
    assert name_key("The Beatles") == name_key("Beatles") == "beatles"
    assert name_key("The") == "the"


def test_dominant_script():
    assert dominant_script("Halo") == "Latin"
    assert dominant_script("Кино") == "Cyrillic"
    assert dominant_script("東京事変") == "Han"
    assert dominant_script("ひとり") == "Kana"
    assert dominant_script("123") is None
