INSERT INTO noncritical_send_holds (business_date, phone_number_id, message_class, held_count, reason, actor)
VALUES (:business_date, :phone_number_id, :message_class, :held_count, :reason, :actor)
