INSERT INTO content_packs (pack_key, business_date, scope, segment, advisor_id, title, body, disclaimer, artwork,
                           risk_level, status, approved_by, approved_at, is_evergreen_fallback, submitted_at)
VALUES (:pack_key, :business_date, :scope, :segment, :advisor_id, :title, :body, :disclaimer, :artwork,
        :risk_level, :status, :approved_by, :approved_at, :is_evergreen_fallback, :submitted_at)
ON CONFLICT (pack_key) DO NOTHING
