"""Readers of both log layouts on hand-made lines, including every quirk of SPEC §3."""
import pickle

import pytest

from components.feedback_example_gen import readers as r

T0 = 1494000000  # 2017-05-05 16:00 UTC

EVENTS_HEADER = "user_id,item_id,cate_id,brand_id,timestamp,feedback,pid"


def canonical_event(line, header=EVENTS_HEADER):
    return r.CanonicalEventReader(header, "events-0.csv")(line)


class TestCanonicalEvents:
    def test_impression_click(self):
        event = canonical_event("42,1001,7,88,1494000000,click,430548_1007")
        assert event == r.Event("42", "1001", "7", "88", 1494000000, "click", "430548_1007", True)

    def test_feedback_kinds_and_impression_flag(self):
        assert canonical_event("1,5,7,,1494000010,unclick,").is_impression
        like = canonical_event("1,5,7,,1494000010,like,")
        assert like.feedback == "like" and not like.is_impression
        assert not canonical_event("1,5,7,,1494000010,dislike,").is_impression
        # Category-level behaviour: empty item id, history only.
        browse = canonical_event("1,,7,,1494000010,click,")
        assert browse.item_id == "" and browse.cate_id == "7" and not browse.is_impression

    def test_empty_brand_and_optional_pid_column(self):
        header = "user_id,item_id,cate_id,brand_id,timestamp,feedback"
        event = canonical_event("9,5,7,,1494000011,click", header)
        assert event.brand_id == "" and event.pid == "" and event.timestamp == 1494000011

    def test_columns_in_any_order_extra_ignored(self):
        header = "feedback,timestamp,extra,user_id,brand_id,cate_id,item_id"
        event = canonical_event("like,1494000012,zzz,u1,b,c,i", header)
        assert event == r.Event("u1", "i", "c", "b", 1494000012, "like", "", False)

    def test_crlf_spaces_bom_header_and_bytes(self):
        reader = r.CanonicalEventReader(b"\xef\xbb\xbf" + EVENTS_HEADER.encode() + b"\r\n")
        event = reader(b" 3 , 4 ,5,6, 1494000001 , CLICK ,p\r\n")
        assert event == r.Event("3", "4", "5", "6", 1494000001, "click", "p", True)

    def test_float_timestamp_accepted(self):
        assert canonical_event("1,2,3,4,1494000000.0,click,").timestamp == 1494000000

    def test_quoted_fields_accepted(self):
        event = canonical_event('"1","2",3,4,1494000005,"click",')
        assert event.user_id == "1" and event.item_id == "2" and event.feedback == "click"

    @pytest.mark.parametrize("line,reason", [
        ("1,2,3,4,5,click", r.COLUMN_COUNT),
        ("1,2,3,4,5,click,p,extra", r.COLUMN_COUNT),
        (",2,3,4,5,click,p", r.EMPTY_USER),
        ("1,2,3,4,yesterday,click,p", r.BAD_TIMESTAMP),
        ("1,2,3,4,,click,p", r.BAD_TIMESTAMP),
        ("1,2,3,4,-7,click,p", r.BAD_TIMESTAMP),
        ("1,2,3,4,nan,click,p", r.BAD_TIMESTAMP),
        ("1,2,3,4,1494000005,purchase,p", r.UNKNOWN_FEEDBACK),
        ("1,2,3,4,1494000005,,p", r.UNKNOWN_FEEDBACK),
        ("1,,,4,1494000005,click,p", r.NO_ITEM_OR_CATEGORY),
        # Implausible times: cut to 6 digits (1970), the year 2100, milliseconds.
        ("1,2,3,4,149402,click,p", r.TIMESTAMP_OUT_OF_RANGE),
        ("1,2,3,4,5,click,p", r.TIMESTAMP_OUT_OF_RANGE),
        ("1,2,3,4,4102444800,click,p", r.TIMESTAMP_OUT_OF_RANGE),
        ("1,2,3,4,1494000000123,click,p", r.TIMESTAMP_IN_MILLISECONDS),
        ('1,"2,3,4,5,click,p', r.STRAY_QUOTE),
        ('1,2"x,3,4,5,click,p', r.STRAY_QUOTE),
        ('1,"2"x,3,4,5,click,p', r.STRAY_QUOTE),
        ("", r.EMPTY_LINE),
        ("   \r\n", r.EMPTY_LINE),
    ])
    def test_bad_rows_carry_reason_and_line(self, line, reason):
        bad = canonical_event(line)
        assert isinstance(bad, r.BadRow)
        assert bad.reason == reason
        assert bad.source == "events-0.csv"
        assert bad.line == line.rstrip("\r\n")

    def test_non_utf8_bytes_are_a_bad_row_not_a_crash(self):
        bad = canonical_event(b"1,2,3,4,5,cl\xffick,p\n")
        assert isinstance(bad, r.BadRow) and bad.reason == r.NON_UTF8
        assert bad.line == "1,2,3,4,5,cl\\xffick,p"

    def test_header_missing_column_raises_clearly(self):
        with pytest.raises(ValueError, match="lacks required column.*feedback"):
            r.CanonicalEventReader("user_id,item_id,cate_id,brand_id,timestamp", "e.csv")

    def test_reader_is_picklable_for_beam(self):
        reader = r.CanonicalEventReader(EVENTS_HEADER, "events-0.csv")
        clone = pickle.loads(pickle.dumps(reader))
        assert clone("1,2,3,4,5,click,p") == reader("1,2,3,4,5,click,p")


class TestCanonicalTables:
    def test_users(self):
        reader = r.CanonicalUserReader("user_id,age_level,pvalue_level")
        assert reader("7,3,") == r.UserProfile("7", (("age_level", "3"), ("pvalue_level", "")))
        assert reader(",3,1").reason == r.EMPTY_USER
        assert reader("7,3").reason == r.COLUMN_COUNT

    def test_items(self):
        reader = r.CanonicalItemReader("item_id,cate_id,brand_id,price")
        assert reader("5,7,,12.5") == r.Item("5", "7", "", 12.5)
        assert reader("5,7,9,") == r.Item("5", "7", "9", None)
        assert reader("5,7,9,cheap").reason == r.BAD_PRICE
        assert reader("5,7,9,inf").reason == r.BAD_PRICE
        assert reader(",7,9,1").reason == r.EMPTY_ITEM
        no_price = r.CanonicalItemReader("item_id,cate_id,brand_id")
        assert no_price("5,7,9") == r.Item("5", "7", "9", None)


class TestTianchi:
    RAW = "user,time_stamp,adgroup_id,pid,nonclk,clk"
    BEHAVIOR = "user,time_stamp,btag,cate,brand"
    AD = "adgroup_id,cate_id,campaign_id,customer,brand,price"
    PROFILE = ("userid,cms_segid,cms_group_id,final_gender_code,age_level,pvalue_level,"
               "shopping_level,occupation,new_user_class_level ")

    def test_raw_sample_click_and_unclick(self):
        reader = r.TianchiImpressionReader(self.RAW, "raw_sample.csv")
        click = reader("581738,1494137644,1,430548_1007,0,1")
        assert click == r.Event("581738", "1", "", "", 1494137644, "click", "430548_1007", True)
        unclick = reader("449818,1494638778,3,430539_1007,1,0")
        assert unclick.feedback == "unclick" and unclick.pid == "430539_1007"

    @pytest.mark.parametrize("line,reason", [
        ("1,1494137644,1,430548_1007,0,2", r.UNKNOWN_FEEDBACK),
        ("1,1494137644,1,430548_1007,1,1", r.INCONSISTENT_LABEL),
        ("1,1494137644,1,430548_1007,0,0", r.INCONSISTENT_LABEL),
        ("1,1494137644,,430548_1007,1,0", r.EMPTY_ITEM),
        (",1494137644,1,430548_1007,1,0", r.EMPTY_USER),
        ("1,14941x7644,1,430548_1007,1,0", r.BAD_TIMESTAMP),
        ("1,1494137644,1,430548_1007,1", r.COLUMN_COUNT),
    ])
    def test_raw_sample_bad_rows(self, line, reason):
        assert r.TianchiImpressionReader(self.RAW)(line).reason == reason

    def test_behavior_log_btags(self):
        reader = r.TianchiBehaviorReader(self.BEHAVIOR)
        pv = reader("558157,1493741625,pv,6250,91286")
        assert pv == r.Event("558157", "", "6250", "91286", 1493741625, "click", "", False)
        for btag in ("cart", "fav", "buy"):
            assert reader("1,1493741625,%s,3,4" % btag).feedback == "like"
        assert reader("1,1493741625,pv,3,NULL").brand_id == ""
        assert reader("1,1493741625,pv,3,").brand_id == ""
        assert reader("1,1493741625,share,3,4").reason == r.UNKNOWN_FEEDBACK
        assert reader("1,1493741625,pv,NULL,4").reason == r.NO_ITEM_OR_CATEGORY

    def test_ad_feature_null_and_empty_brand(self):
        reader = r.TianchiAdReader(self.AD)
        assert reader("63133,6406,83237,1,95766,58.0") == r.Item("63133", "6406", "95766", 58.0)
        assert reader("25542,6406,83237,1,NULL,58.0").brand_id == ""
        assert reader("25542,6406,83237,1,,58.0").brand_id == ""
        assert reader("25542,6406,83237,1,,NULL").price is None

    def test_user_profile_trailing_space_header_and_empty_levels(self):
        reader = r.TianchiUserReader(self.PROFILE)
        profile = reader("234,0,5,2,5,,3,0,")
        assert profile.user_id == "234"
        fields = dict(profile.fields)
        assert set(fields) == {"cms_segid", "cms_group_id", "final_gender_code", "age_level",
                               "pvalue_level", "shopping_level", "occupation",
                               "new_user_class_level"}
        assert fields["pvalue_level"] == "" and fields["new_user_class_level"] == ""
        assert fields["age_level"] == "5"


class TestLayouts:
    def test_detect_canonical(self):
        assert r.detect_layout(["d/events-00000-of-00002.csv", "d/users.csv"]) == r.CANONICAL

    def test_detect_tianchi(self):
        names = ["raw_sample.csv", "ad_feature.csv", "user_profile.csv", "behavior_log.csv"]
        assert r.detect_layout(names) == r.TIANCHI
        groups = r.classify_files(r.TIANCHI, names)
        assert groups["impressions"] == ["raw_sample.csv"]
        assert groups["behaviors"] == ["behavior_log.csv"]

    def test_detect_neither_is_a_clear_error(self):
        with pytest.raises(ValueError, match="cannot tell the log layout"):
            r.detect_layout(["notes.txt"])

    def test_file_names_in_any_case_with_gz_or_bz2(self):
        names = ["d/Events-1.CSV", "d/day=2017-05-06/events.csv.bz2", "d/EVENTS-3.csv.GZ",
                 "d/users.csv.bz2", "d/items.CSV", "d/events.csv.zip", "d/notes.txt"]
        groups = r.classify_files(r.CANONICAL, names)
        assert groups["events"] == ["d/EVENTS-3.csv.GZ", "d/Events-1.CSV",
                                    "d/day=2017-05-06/events.csv.bz2"]
        assert groups["users"] == ["d/users.csv.bz2"] and groups["items"] == ["d/items.CSV"]

    def test_reader_for_builds_from_header(self):
        reader = r.reader_for(r.CANONICAL, "events", EVENTS_HEADER, "events-1.csv")
        assert isinstance(reader, r.CanonicalEventReader)
        assert reader("1,2,3,4,1494000005,click,p").user_id == "1"


def test_time_window_from_the_median_and_the_middle_span():
    day = r.SECONDS_PER_DAY
    week = [T0 + n * 600 for n in range(8 * 144)]  # 8 days, every 10 minutes
    window = r.time_window(week)
    assert window.median == week[len(week) // 2] and window.days == 30 and window.derived
    assert (window.start, window.end) == (window.median - 30 * day, window.median + 30 * day)
    year = [T0 + n * day for n in range(365)]
    # Middle 80% spans 292 days; twice that: 584 days, so the whole year stays in.
    assert r.time_window(year).days == 584
    assert r.time_window(year, max_days_from_median=7).days == 7
    assert r.time_window(week[:19]) is None  # too few to trust


def test_an_event_far_from_the_median_is_out_of_range():
    reader = r.CanonicalEventReader(
        "user_id,item_id,cate_id,brand_id,timestamp,feedback", "events.csv")
    reader.set_time_window(r.time_window([T0 + n for n in range(100)]))
    assert isinstance(reader("u,i,c,b,%d,click" % (T0 + 29 * 86400)), r.Event)
    stray = reader("u,i,c,b,%d,click" % (T0 + 2000 * 86400))  # 2022: a plausible date
    assert stray.reason == r.TIMESTAMP_OUT_OF_RANGE
    assert "30 days from the logs' median time 2017-05-05" in stray.detail
    assert reader("u,i,c,b,%d,click" % ((T0 + 50) * 1000)).reason == (
        r.TIMESTAMP_IN_MILLISECONDS)
