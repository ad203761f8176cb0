-- Meta's user_preferences webhook (a user stopped or resumed marketing messages in WhatsApp's
-- "Offers and announcements" setting) is stored as its own kind of webhook event. A 'stop' puts the
-- number on do_not_contact with source 'api_opt_out' (the same source as a 131050, so the opt-out
-- spike alert and the compliance review count it); a 'resume' is recorded only: taking a number off
-- do_not_contact is a human decision.
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_kind_check;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_kind_check
    CHECK (kind IN ('status', 'message', 'error', 'user_preference'));
