import { ApiProperty } from '@nestjs/swagger';
import {
  IsInt,
  IsNumber,
  IsOptional,
  IsString,
  Length,
  Matches,
  Max,
  Min,
  ValidateIf,
} from 'class-validator';
import { MESSAGE_ID_MAX, StorableText } from '../../common/fields/json-bounds';
import { LLM_MODEL_NAME_MAX } from '../../sessions/dto/session.dto';

const PARENT_RULE = 'parent_id must be a message id (an integer) or null';

/** `POST /api/v1/sessions/{id}/replies`. */
export class CreateReplyDto {
  /** The message to answer, a message of this session. Omitted: the session's `current_message_id`. The reply is stored as its child. */
  @ApiProperty({ type: 'integer', nullable: true, required: false, example: 2 })
  @ValidateIf((_, value) => value !== undefined && value !== null)
  @IsInt({ message: PARENT_RULE })
  @Min(1, { message: PARENT_RULE })
  @Max(MESSAGE_ID_MAX, { message: PARENT_RULE })
  readonly parent_id?: number | null;

  /** The model to ask. Omitted: the session's `llm_model_name`. */
  @ApiProperty({
    required: false,
    minLength: 1,
    maxLength: LLM_MODEL_NAME_MAX,
    example: 'llama3.2',
  })
  @ValidateIf((_, value) => value !== undefined)
  @IsString()
  @StorableText()
  @Length(1, LLM_MODEL_NAME_MAX, {
    message: `model must be 1 to ${LLM_MODEL_NAME_MAX} characters long`,
  })
  readonly model?: string;

  /** Sampling temperature, 0–2, passed to the model. */
  @ApiProperty({ required: false, minimum: 0, maximum: 2, example: 0.7 })
  @ValidateIf((_, value) => value !== undefined)
  @IsNumber(
    { allowNaN: false, allowInfinity: false },
    { message: 'temperature must be a number from 0 to 2' },
  )
  @Min(0, { message: 'temperature must be a number from 0 to 2' })
  @Max(2, { message: 'temperature must be a number from 0 to 2' })
  readonly temperature?: number;

  /** The most tokens the model may generate, 1–32768. */
  @ApiProperty({ required: false, type: 'integer', minimum: 1, maximum: 32768, example: 512 })
  @ValidateIf((_, value) => value !== undefined)
  @IsInt({ message: 'max_tokens must be an integer from 1 to 32768' })
  @Min(1, { message: 'max_tokens must be an integer from 1 to 32768' })
  @Max(32768, { message: 'max_tokens must be an integer from 1 to 32768' })
  readonly max_tokens?: number;
}

/** `GET …/messages/{message_id}/stream`. */
export class StreamQueryDto {
  /** Where to start in the reply's text (UTF-16 code units); `Last-Event-ID` wins over it. */
  @ApiProperty({ required: false, type: 'integer', minimum: 0, example: 0 })
  @IsOptional()
  @Matches(/^\d{1,15}$/, { message: 'offset must be a non-negative integer' })
  readonly offset?: string;
}
